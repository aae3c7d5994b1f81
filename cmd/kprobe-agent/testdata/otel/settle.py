# A settlement service instrumented the stock way: opentelemetry-sdk with the OTLP gRPC
# exporter and a resource naming only the service (no host.name, no process.pid, no
# thread attributes). It waits for a line on stdin, then settles: first one at a time on
# a worker thread, then two at a time on two threads. For each settlement it prints the
# ground truth the test checks the recording against:
#   settlement ID trace TRACE_ID tid NATIVE_TID bytes N start START_NS end END_NS
import os
import sys
import threading
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "settlement-py"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("settle")

ledger_dir = sys.argv[1]
sequential, pairs = int(sys.argv[2]), int(sys.argv[3])
out_lock = threading.Lock()


def settle(sid, writes):
    path = os.path.join(ledger_dir, "ledger-%d" % sid)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    size = 1000 + sid % 1000
    with tracer.start_as_current_span("settlement.process", attributes={"settlement.id": str(sid)}) as span:
        start = time.time_ns()
        for _ in range(writes):
            os.write(fd, b"x" * size)
            time.sleep(0.002)
        end = time.time_ns()
        trace_id = format(span.get_span_context().trace_id, "032x")
    os.close(fd)
    with out_lock:
        print("settlement %d trace %s tid %d bytes %d start %d end %d"
              % (sid, trace_id, threading.get_native_id(), size, start, end), flush=True)


sys.stdin.readline()
for i in range(sequential):
    t = threading.Thread(target=settle, args=(5000 + i, 3))
    t.start()
    t.join()
    time.sleep(0.01)
for i in range(pairs):
    ts = [threading.Thread(target=settle, args=(6000 + 2 * i + k, 10)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
