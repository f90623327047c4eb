"""Exports through the OpenTelemetry Python SDK's OTLP/HTTP protobuf exporters (PyPI
`opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-http`) to opsboard, as an instrumented
service would: a counter, a gauge, a histogram (cumulative) and two log records, gzip on,
the key in the Authorization header. Usage: otel_export.py ENDPOINT KEY
(ENDPOINT = http://host:port/api/v1/tenants/{tenant}/otlp)"""

import logging
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

endpoint, key = sys.argv[1:3]
headers = {"Authorization": f"Bearer {key}"}
resource = Resource.create({"service.name": "shop", "host.name": "web-1"})

metric_exporter = OTLPMetricExporter(
    endpoint=f"{endpoint}/v1/metrics", headers=headers, compression=Compression.Gzip
)
reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
meters = MeterProvider(resource=resource, metric_readers=[reader])
meter = meters.get_meter("checkout")
requests = meter.create_counter("http.server.requests", unit="1")
requests.add(3, {"http.route": "/cart", "http.response.status_code": 200})
requests.add(2, {"http.route": "/cart", "http.response.status_code": 200})
requests.add(1, {"http.route": "/pay", "http.response.status_code": 500})
depth = meter.create_gauge("queue.depth")
depth.set(7.5, {"queue": "orders"})
latency = meter.create_histogram("http.server.duration", unit="ms")
for ms in (4, 12, 12, 240):
    latency.record(ms, {"http.route": "/cart"})
meters.shutdown()  # one export: a flush before it would export the cumulative points twice

logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(
    SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers))
)
logger = logging.getLogger("payments")
logger.propagate = False
logger.setLevel(logging.INFO)
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logs))
logger.warning("card declined", extra={"order.id": "o-17", "amount": 12.5})
logger.error("gateway timeout")
logs.shutdown()
print("ok")
