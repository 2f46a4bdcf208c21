"""The `#SBATCH` / option reader of `ctwin sbatch`: every Slurm time format, the command line over
the script, sbatch's own rules for where directives stop, unknown options passed through, and
malformed input reported with its line."""

from __future__ import annotations

import pytest

from service.cli_sbatch import split_own
from service.hooks.sbatch_script import (
    SbatchScriptError,
    directives,
    parse_memory,
    parse_slurm_time,
    read_job,
    split_command,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 600),  # MM
        ("0", 0),
        ("90", 5400),
        ("10:30", 630),  # MM:SS
        ("2:03:04", 2 * 3600 + 3 * 60 + 4),  # HH:MM:SS
        ("1-12", 86400 + 12 * 3600),  # D-HH
        ("1-12:30", 86400 + 12 * 3600 + 30 * 60),  # D-HH:MM
        ("2-01:02:03", 2 * 86400 + 3600 + 2 * 60 + 3),  # D-HH:MM:SS
        ("INFINITE", None),
        ("unlimited", None),
    ],
)
def test_every_slurm_time_format(text: str, seconds: int | None) -> None:
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1h", "1:2:3:4", "-5", "1-", "a-1", "1-2:3:4:5", "1.5"])
def test_a_time_slurm_would_refuse_is_refused_with_the_formats(text: str) -> None:
    with pytest.raises(ValueError, match="use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"):
        parse_slurm_time(text)


def test_memory_sizes_default_to_megabytes() -> None:
    assert parse_memory("100") == 100 * 2**20
    assert parse_memory("4G") == 4 * 2**30 and parse_memory("4GB") == 4 * 2**30 and parse_memory("512k") == 512 * 2**10
    assert parse_memory("1T") == 2**40
    with pytest.raises(ValueError, match="K, M, G or T"):
        parse_memory("lots")


SCRIPT = """#!/bin/bash
#SBATCH --job-name="my job"   # a comment after the words
#SBATCH -n 4
#SBATCH --cpus-per-task=2 -t 1-02:00
# just a comment
#SBATCH --mem 8G --gres=gpu:a100:2
#SBATCHING is not a directive
  #SBATCH -n 99 (indented: not a directive)

#SBATCH -p debug,long
#SBATCH --comment 'from the script'
#SBATCH -M alpha
module load x
#SBATCH -n 1000 (after the first command: ignored, as sbatch does)
"""


def test_directives_are_read_like_sbatch_reads_them() -> None:
    job = read_job(split_command(["job.sh"]), SCRIPT, "job.sh")
    assert job.job_name == "my job" and job.ntasks == 4 and job.cpus_per_task == 2 and job.cores == 8
    assert job.time_s == 86400 + 2 * 3600
    assert job.mem_per_node_bytes == 8 * 2**30 and job.gpus_per_node == 2 and job.total_gpus == 2
    assert job.partitions == ("debug", "long") and job.clusters == ("alpha",) and job.comment == "from the script"
    assert job.given["ntasks"] == "job.sh:3" and job.given["clusters"] == "job.sh:12"


def test_the_command_line_wins_over_the_script() -> None:
    command = split_command(["-n", "2", "--time=30", "-M", "beta", "--comment=cli", "-pshort", "job.sh", "-n", "7"])
    job = read_job(command, SCRIPT, "job.sh")
    assert job.ntasks == 2 and job.cpus_per_task == 2 and job.time_s == 1800
    assert job.clusters == ("beta",) and job.comment == "cli" and job.partitions == ("short",)
    assert job.given["ntasks"] == "command line '-n'" and job.given["cpus-per-task"] == "job.sh:4"
    assert command.script == "job.sh" and command.script_args == ("-n", "7")  # the script's own arguments


def test_options_without_a_script_file_and_the_cores_a_job_asks_for() -> None:
    job = read_job(split_command(["-N", "2-4", "--ntasks-per-node=3", "-c", "2", "--wrap", "hostname"]), None)
    assert job.nodes == 2 and job.tasks == 6 and job.cores == 12 and job.wrap
    assert read_job(split_command(["-N", "3", "--wrap", "x"]), None).cores == 3  # one task per node
    assert read_job(split_command(["--wrap", "x"]), None).cores == 1
    gpus = read_job(split_command(["-N", "2", "--gpus-per-node=a100:4", "--wrap", "x"]), None)
    assert gpus.total_gpus == 8
    assert read_job(split_command(["-G", "3", "--wrap", "x"]), None).total_gpus == 3
    assert read_job(split_command(["-n", "4", "--gpus-per-task=1", "--wrap", "x"]), None).total_gpus == 4
    per_cpu = read_job(split_command(["-n", "4", "--mem-per-cpu=1G", "--wrap", "x"]), None)
    assert per_cpu.memory_per_node_bytes == 4 * 2**30
    assert read_job(split_command(["--mem=0", "--wrap", "x"]), None).memory_per_node_bytes is None  # all of it
    unlimited = read_job(split_command(["-t", "UNLIMITED", "--wrap", "x"]), None)
    assert unlimited.time_s is None and unlimited.unlimited_time


def test_unknown_and_uninterpreted_options_are_passed_through_as_written() -> None:
    argv = ["-A", "proj", "--qos=high", "--exclusive", "--frobnicate", "-vQ", "--export=ALL,X=1", "--nice", "job.sh"]
    command = split_command(argv)
    assert command.script == "job.sh"
    words = [w for o in command.options for w in o.words]
    assert words == [
        "-A",
        "proj",
        "--qos=high",
        "--exclusive",
        "--frobnicate",
        "-v",
        "-Q",
        "--export=ALL,X=1",
        "--nice",
    ]
    names = [o.name for o in command.options]
    assert names == ["account", "qos", "exclusive", None, "verbose", "quiet", "export", "nice"]
    # abbreviated long options resolve as getopt_long resolves them
    assert [o.name for o in split_command(["--part=debug", "--cpus-per-t", "2", "x.sh"]).options] == [
        "partition",
        "cpus-per-task",
    ]
    # a short option with its value attached, after flags
    opts = split_command(["-vn4", "x.sh"]).options
    assert [(o.name, o.value) for o in opts] == [("verbose", None), ("ntasks", "4")]


def test_the_wrappers_own_options_are_taken_out_before_the_script_only() -> None:
    own = split_own(["--dry-run", "-c", "2", "--config", "ct.yaml", "--url=http://x", "-A", "p", "job.sh", "--json"])
    assert own.dry_run and not own.as_json and str(own.config) == "ct.yaml" and own.url == "http://x"
    assert own.sbatch_args == ["-c", "2", "-A", "p", "job.sh", "--json"]  # -c is sbatch's, --json the script's


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("#!/bin/sh\n#SBATCH -t 10\n#SBATCH --time=soon\nhostname\n", r"job\.sh:3: --time 'soon' is not a Slurm time"),
        ("#!/bin/sh\n#SBATCH -J 'unclosed\n", r"job\.sh:2: No closing quotation .*close the quote"),
        ("#!/bin/sh\n\n#SBATCH -n four\n", r"job\.sh:3: --ntasks 'four' is not a positive whole number"),
        ("#!/bin/sh\n#SBATCH --mem=much\n", r"job\.sh:2: --mem 'much' is not a memory size"),
        ("#!/bin/sh\n#SBATCH -n\n", r"job\.sh:2: -n needs a value"),
        ("#!/bin/sh\n#SBATCH stray words\n", r"job\.sh:2: 'stray' is not an option"),
        ("#!/bin/sh\n#SBATCH --gres=gpu:a100:many\n", r"job\.sh:2: --gres .*not a number"),
        ("#!/bin/sh\n#SBATCH --c 2\n", r"job\.sh:2: --c is ambiguous"),
    ],
)
def test_a_malformed_directive_names_its_line_and_the_fix(script: str, says: str) -> None:
    with pytest.raises(SbatchScriptError, match=says):
        read_job(split_command(["job.sh"]), script, "job.sh")


def test_a_malformed_command_line_option_names_the_option() -> None:
    with pytest.raises(SbatchScriptError, match=r"command line '-t': --time '1h' is not a Slurm time"):
        read_job(split_command(["-t", "1h", "job.sh"]), "#!/bin/sh\n", "job.sh")
    with pytest.raises(SbatchScriptError, match="--parsable takes no value"):
        split_command(["--parsable=yes", "job.sh"])


def test_heterogeneous_jobs_are_recognised() -> None:
    assert split_command(["-n", "1", ":", "-n", "2", "job.sh"]).heterogeneous
    _, hetjob = directives("#!/bin/sh\n#SBATCH -n 1\n#SBATCH hetjob\n#SBATCH -n 2\n")
    assert hetjob
    assert read_job(split_command(["job.sh"]), "#!/bin/sh\n#SBATCH hetjob\n").heterogeneous
