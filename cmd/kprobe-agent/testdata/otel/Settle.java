// A settlement service traced by the stock OpenTelemetry Java agent (its defaults:
// host.name, process.pid, and on every span thread.id = the JVM's thread number and
// thread.name), with manual spans through the OpenTelemetry API. It waits for a line on
// stdin, then two named worker threads settle at the same time. For each settlement it
// prints the ground truth the test checks the recording against:
//   settlement ID trace TRACE_ID tid NATIVE_TID bytes N start START_NS end END_NS
import io.opentelemetry.api.GlobalOpenTelemetry;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Scope;
import java.io.BufferedReader;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Instant;

public class Settle {
    static final Tracer tracer = GlobalOpenTelemetry.getTracer("settle");

    static long nowNs() {
        Instant i = Instant.now();
        return i.getEpochSecond() * 1_000_000_000L + i.getNano();
    }

    static void settle(String dir, int id) throws Exception {
        // /proc/thread-self names this OS thread: PID/task/TID.
        String self = Files.readSymbolicLink(Paths.get("/proc/thread-self")).toString();
        String tid = self.substring(self.lastIndexOf('/') + 1);
        int size = 1000 + id % 1000;
        byte[] buf = new byte[size];
        try (FileOutputStream out = new FileOutputStream(dir + "/ledger-" + id)) {
            Span span = tracer.spanBuilder("settlement.process").setAttribute("settlement.id", Integer.toString(id)).startSpan();
            long start, end;
            try (Scope scope = span.makeCurrent()) {
                start = nowNs();
                for (int k = 0; k < 5; k++) {
                    out.write(buf);
                    Thread.sleep(2);
                }
                end = nowNs();
            } finally {
                span.end();
            }
            synchronized (Settle.class) {
                System.out.printf("settlement %d trace %s tid %s bytes %d start %d end %d%n",
                        id, span.getSpanContext().getTraceId(), tid, size, start, end);
                System.out.flush();
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String dir = args[0];
        int perWorker = Integer.parseInt(args[1]);
        new BufferedReader(new InputStreamReader(System.in)).readLine();
        Thread[] workers = new Thread[2];
        for (int w = 0; w < 2; w++) {
            int base = 7000 + w * 100;
            workers[w] = new Thread(() -> {
                try {
                    for (int i = 0; i < perWorker; i++) {
                        settle(dir, base + i);
                        Thread.sleep(5);
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }, "settle-worker-" + (w + 1));
            workers[w].start();
        }
        for (Thread t : workers) {
            t.join();
        }
    }
}
