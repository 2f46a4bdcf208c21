--[[
ctwin placement advice inside plain `sbatch`: Slurm's cli_filter/lua plugin (client side).

Before sbatch talks to any controller, slurm_cli_pre_submit() asks `ctwin sbatch --advise-only
--json` with the job's options and, when the advice names a cluster, sets --clusters, --partition
and --comment ("ctwin-advice=<id> ..."); slurm_cli_post_submit() reports the job id back so the
advice log joins its outcome. Without an answer (no service, no token, nothing recommended) the
job goes where the user's own options send it: this filter never refuses a submission.

Install: see deploy/slurm/README.md. Settings, from the environment or the defaults below:
  CTWIN_BIN     the ctwin program                 (/usr/local/bin/ctwin)
  CTWIN_CONFIG  ctwin's config (schedulers.slurm)  (/etc/ctwin/ctwin.yaml)
  CTWIN_TOKEN / CTWIN_URL, or schedulers.slurm.token_file / url in that config.
  CTWIN_CLI_FILTER_DEBUG=1 logs the ctwin command and its answer.
A submission made by `ctwin sbatch` itself (CTWIN_SBATCH=1), one whose comment already holds an
advice id, and the later components of a heterogeneous job are left alone.
]]

local CTWIN = os.getenv("CTWIN_BIN") or "/usr/local/bin/ctwin"
local CONFIG = os.getenv("CTWIN_CONFIG") or "/etc/ctwin/ctwin.yaml"

-- what advice reads of a job, by sbatch's long option names (the keys of `options`)
local ASKED = {
  "ntasks", "cpus-per-task", "nodes", "ntasks-per-node", "time", "mem", "mem-per-cpu",
  "gres", "gpus", "gpus-per-node", "gpus-per-task", "partition", "clusters",
}

local advised = nil -- {id, cluster} of this submission, for slurm_cli_post_submit

local function quote(s)
  return "'" .. string.gsub(s, "'", "'\\''") .. "'"
end

-- An option the user did not give reads as nil or as Slurm's "unset" value: seen on 22.05,
-- nodes "1-0" (no maximum: fine) and ntasks-per-node "-2" (negative: unset).
local function set(value)
  value = value ~= nil and tostring(value) or ""
  return value ~= "" and value ~= "(null)" and string.sub(value, 1, 1) ~= "-"
end

local function ask(options)
  local words = { quote(CTWIN), "sbatch", "--config", quote(CONFIG), "--advise-only", "--json" }
  for _, name in ipairs(ASKED) do
    local value = options[name]
    if set(value) then
      words[#words + 1] = quote("--" .. name .. "=" .. tostring(value))
    end
  end
  local command = table.concat(words, " ")
  local pipe = io.popen(command .. " 2>/dev/null")
  if pipe == nil then
    return nil
  end
  local answer = pipe:read("*a")
  pipe:close()
  if os.getenv("CTWIN_CLI_FILTER_DEBUG") then
    slurm.log_info("ctwin: %s -> %s", command, answer)
  end
  return answer
end

function slurm_cli_setup_defaults(options, early)
  return slurm.SUCCESS
end

function slurm_cli_pre_submit(options, pack_offset)
  advised = nil
  if os.getenv("CTWIN_SBATCH") or (pack_offset ~= nil and pack_offset > 0) then
    return slurm.SUCCESS
  end
  local comment = options["comment"]
  if set(comment) and string.find(comment, "ctwin-advice=", 1, true) then
    return slurm.SUCCESS
  end
  local answer = ask(options)
  local cluster = answer and string.match(answer, '"cluster": "([^"]+)"')
  local id = answer and string.match(answer, '"advice_id": "([^"]+)"')
  if cluster == nil or id == nil then
    local why = answer and string.match(answer, '"reason": "(.-)"}') or "no answer from " .. CTWIN
    slurm.log_info("ctwin: no placement advice (%s); the job goes where its own options send it", why)
    return slurm.SUCCESS
  end
  options["clusters"] = cluster
  local partition = string.match(answer, '"partition": "([^"]+)"')
  if partition ~= nil then
    options["partition"] = partition
  end
  options["comment"] = "ctwin-advice=" .. id .. (set(comment) and (" " .. comment) or "")
  advised = { id = id, cluster = cluster }
  slurm.log_info("ctwin: advice %s: cluster %s", id, cluster)
  return slurm.SUCCESS
end

function slurm_cli_post_submit(offset, jobid, stepid)
  if advised ~= nil and jobid ~= nil then
    local report = advised.id .. ":" .. advised.cluster .. ":" .. tostring(jobid)
    os.execute(table.concat({ quote(CTWIN), "sbatch", "--config", quote(CONFIG), "--report", quote(report),
      ">/dev/null 2>&1" }, " "))
  end
  return slurm.SUCCESS
end
