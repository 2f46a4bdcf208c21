"""Interconnect metrics: Ethernet-style interfaces from /proc/net/dev and InfiniBand ports from
sysfs. Names follow node_exporter's netdev and infiniband collectors."""

from telemetry.catalog._core import catalog

d = catalog.define
DEV = ("device",)
PORT = ("device", "port")

NET_RX_BYTES = d("node_network_receive_bytes_total", "counter", "bytes", "Bytes received.", DEV)
NET_TX_BYTES = d("node_network_transmit_bytes_total", "counter", "bytes", "Bytes transmitted.", DEV)
NET_RX_PACKETS = d("node_network_receive_packets_total", "counter", "packets", "Packets received.", DEV)
NET_TX_PACKETS = d("node_network_transmit_packets_total", "counter", "packets", "Packets transmitted.", DEV)
NET_RX_ERRS = d("node_network_receive_errs_total", "counter", "errors", "Receive errors.", DEV)
NET_TX_ERRS = d("node_network_transmit_errs_total", "counter", "errors", "Transmit errors.", DEV)
NET_RX_DROP = d("node_network_receive_drop_total", "counter", "packets", "Received packets dropped.", DEV)
NET_TX_DROP = d("node_network_transmit_drop_total", "counter", "packets", "Transmitted packets dropped.", DEV)

IB_RX_BYTES = d("node_infiniband_port_data_received_bytes_total", "counter", "bytes", "Data received on the port (port_rcv_data × 4).", PORT)
IB_TX_BYTES = d("node_infiniband_port_data_transmitted_bytes_total", "counter", "bytes", "Data transmitted on the port (port_xmit_data × 4).", PORT)
IB_LEGACY_RX_BYTES = d("node_infiniband_legacy_data_received_bytes_total", "counter", "bytes", "Data received on the port from the 64-bit counters_ext/port_rcv_data_64 (× 4; mlx4), whose 32-bit counters saturate within seconds.", PORT)
IB_LEGACY_TX_BYTES = d("node_infiniband_legacy_data_transmitted_bytes_total", "counter", "bytes", "Data transmitted on the port from the 64-bit counters_ext/port_xmit_data_64 (× 4; mlx4).", PORT)
IB_RX_PACKETS = d("node_infiniband_port_packets_received_total", "counter", "packets", "Packets received on the port.", PORT)
IB_TX_PACKETS = d("node_infiniband_port_packets_transmitted_total", "counter", "packets", "Packets transmitted on the port.", PORT)
IB_RX_ERRORS = d("node_infiniband_port_errors_received_total", "counter", "errors", "Received packets with errors.", PORT)
IB_TX_DISCARDS = d("node_infiniband_port_discards_transmitted_total", "counter", "packets", "Outbound packets discarded.", PORT)
IB_TX_WAIT = d("node_infiniband_port_transmit_wait_total", "counter", "ticks", "Ticks the port had data to send but no flow-control credits.", PORT)
IB_LINK_DOWNED = d("node_infiniband_link_downed_total", "counter", "events", "Times the link error recovery failed and the link went down.", PORT)
IB_RATE = d("node_infiniband_rate_bytes_per_second", "gauge", "bytes_per_second", "Link rate (from `rate`, e.g. 40 Gb/sec → 5e9).", PORT)
IB_STATE = d("node_infiniband_state_id", "gauge", "", "Port state (4 = ACTIVE).", PORT)
IB_PHYS_STATE = d("node_infiniband_physical_state_id", "gauge", "", "Port physical state (5 = LinkUp).", PORT)
