"""Writes through the official InfluxDB 2.x Python client (PyPI `influxdb-client`) to opsboard,
as a Telegraf or application would: token auth, gzip, nanosecond points built with its Point
API (escapes are the client's own). Usage: influx_v2.py URL TOKEN BUCKET"""

import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

url, token, bucket = sys.argv[1:4]
with InfluxDBClient(url=url, token=token, org="any-org", enable_gzip=True) as client:
    write = client.write_api(write_options=SYNCHRONOUS)
    points = [
        Point("sensor reading")
        .tag("room name", "lab, north=1")
        .tag("kind", "temp")
        .field("celsius", 21.5)
        .field("samples", 12)
        .field("ok", True)
        .field("note", 'said "hi" \\ bye')
        .time(1700000000123456789, WritePrecision.NS),
        Point("sensor reading").tag("room name", "hall").tag("kind", "temp")
        .field("celsius", -3.25).field("samples", 0).field("ok", False).field("note", "")
        .time(1700000001000000000, WritePrecision.NS),
    ]
    write.write(bucket=bucket, record=points)
    # Line-protocol text straight from the application, seconds precision.
    write.write(bucket=bucket, record="sensor\\ reading,kind=hum,room\\ name=hall celsius=50 1700000002",
                write_precision=WritePrecision.S)
print("ok")
