-- medmon event tables for ClickHouse (18.16 and later), one per event type; docs/sinks.md.
-- The sink sends every field of an event flattened (nested keys joined by '_') plus the whole
-- event in `raw`; the server keeps the columns below and skips the others
-- (input_format_skip_unknown_fields=1). Add a column named after a flattened field to keep it.
-- (sensor_id, run, seq) identifies an event: the sink uses it to never insert a batch twice.
--   clickhouse-client --multiquery < deploy/clickhouse/schema.sql
CREATE DATABASE IF NOT EXISTS medmon;

CREATE TABLE IF NOT EXISTS medmon.flow
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    flow_start String,
    flow_end String,
    flow_duration Float64,
    flow_state String,
    flow_pkts_toserver UInt64,
    flow_pkts_toclient UInt64,
    flow_bytes_toserver UInt64,
    flow_bytes_toclient UInt64,
    flow_gaps_toserver UInt64,
    flow_gaps_toclient UInt64,
    app String,
    ndpi_protocol String,
    ndpi_category String,
    ndpi_risks Array(String),
    tls_sni String,
    tls_version String,
    tls_cipher String,
    tls_ja3 String,
    tls_ja3s String,
    phi_cleartext Array(String),
    verdict String,
    verdict_rule String,
    mds2 Array(String),
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.alert
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    alert_rule String,
    alert_severity String,
    alert_message String,
    alert_device String,
    alert_peer String,
    alert_mds2 Array(String),
    alert_evidence_flow_ids Array(String),
    alert_evidence_phi_fields Array(String),
    alert_evidence_model String,
    alert_evidence_app String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.asset
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    asset_ip String,
    asset_mac String,
    asset_hostname String,
    asset_device String,
    asset_zone String,
    asset_model String,
    asset_changes Array(String),
    asset_first_seen String,
    asset_last_seen String,
    asset_dicom_ae_titles Array(String),
    asset_dicom_impl_class_uid String,
    asset_dicom_impl_version String,
    asset_flows UInt64,
    asset_bytes UInt64,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.anomaly
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    anomaly_dissector String,
    anomaly_name String,
    anomaly_offset UInt64,
    anomaly_detail String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.stats
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    stats_worker Int32,
    stats_packets UInt64,
    stats_bytes UInt64,
    stats_flows UInt64,
    stats_flows_active UInt64,
    stats_capture_received UInt64,
    stats_capture_dropped UInt64,
    stats_capture_if_dropped UInt64,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.dicom
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    dicom_status String,
    dicom_calling_ae String,
    dicom_called_ae String,
    dicom_rq_impl_class_uid String,
    dicom_rq_impl_version String,
    dicom_ops Array(String),
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.hl7
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    hl7_kind String,
    hl7_transport String,
    hl7_sending_application String,
    hl7_sending_facility String,
    hl7_receiving_application String,
    hl7_receiving_facility String,
    hl7_message_type String,
    hl7_trigger_event String,
    hl7_control_id String,
    hl7_processing_id String,
    hl7_version String,
    hl7_phi_fields Array(String),
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.astm
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.poct1
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.sdc
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.dhcp
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    dhcp_version UInt8 DEFAULT 4,  -- DHCPv4 events carry no version
    dhcp_message_type String,
    dhcp_client_mac String,
    dhcp_hostname String,
    dhcp_vendor_class String,
    dhcp_client_ip String,
    dhcp_assigned_ip String,
    dhcp_requested_ip String,
    dhcp_server_id String,
    dhcp_lease_time UInt32,
    dhcp_client_fqdn String,
    dhcp_client_duid String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.proprietary
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS medmon.other
(
    sensor_id String,
    time DateTime('UTC'),
    ts_us UInt64,
    run String,
    seq UInt64,
    ts String,
    event_type String,
    flow_id String,
    src_ip String,
    src_port UInt16,
    dst_ip String,
    dst_port UInt16,
    proto String,
    vlan UInt16,
    vlan_inner UInt16,
    community_id String,
    src_device String,
    dst_device String,
    src_zone String,
    dst_zone String,
    raw String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, sensor_id)
SETTINGS index_granularity = 8192;
