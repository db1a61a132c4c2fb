package livehub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.microsoft.signalr.HttpHubConnectionBuilder;
import com.microsoft.signalr.HubConnection;
import com.microsoft.signalr.HubConnectionBuilder;
import com.microsoft.signalr.HubConnectionState;
import com.microsoft.signalr.HubException;
import com.microsoft.signalr.TransportEnum;
import io.reactivex.rxjava3.core.Single;
import io.reactivex.rxjava3.disposables.Disposable;
import io.reactivex.rxjava3.subjects.ReplaySubject;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The official ASP.NET Core SignalR Java client ({@code com.microsoft.signalr}, pinned in
 * pom.xml) against the real livehub binary ({@code LIVEHUB_BIN}), unchanged, with the JSON hub
 * protocol over each transport the Java client has: WebSockets after a negotiate, WebSockets with
 * the negotiate skipped, and long polling. For each: subscribe and receive a publication made over
 * the HTTP API, publish with a result (and an idempotency key), history, presence, invocations
 * that fail with livehub's error code while the connection goes on, a server-to-client stream
 * until the client cancels it, and a clean stop that the server sees; over WebSockets also a
 * client-to-server stream (see {@link #uploadsAClientStream}).
 */
@ExtendWith(Report.class)
class SignalRJavaClientTest {
  /** How long any one step may take before the test gives up on it (a deadline, not a measure). */
  static final long WAIT_SECS = 10;

  static Process server;
  static String url;
  static final HttpClient http = HttpClient.newHttpClient();
  static final AtomicInteger unique = new AtomicInteger();

  /** A publication as livehub invokes {@code Receive(channel, message)} and streams it. */
  static final class Message {
    String channel;
    JsonElement data;
    long offset;
    String epoch;
    long ts;
  }

  /** A {@code Receive} invocation: its channel argument and its message. */
  record Received(String channel, Message message) {}

  /** The transports of the Java client; it has no Server-Sent Events. */
  enum Mode {
    WEBSOCKETS,
    WEBSOCKETS_WITHOUT_NEGOTIATE,
    LONG_POLLING
  }

  @BeforeAll
  static void startServer() throws Exception {
    String binary = System.getenv("LIVEHUB_BIN");
    assertNotNull(binary, "LIVEHUB_BIN names the livehub binary (tests/signalr/run.sh sets it)");
    ProcessBuilder builder =
        new ProcessBuilder(binary, "serve", "--listen", "127.0.0.1:0", "--no-sources", "--log", "info");
    // No data directory and no fixed MQTT port: parallel servers must not share either.
    builder.environment().put("LIVEHUB_STORE", "memory");
    builder.environment().put("LIVEHUB_MQTT_LISTEN", "127.0.0.1:0");
    builder.redirectOutput(ProcessBuilder.Redirect.DISCARD);
    server = builder.start();
    // The listen address is in the log; the rest of the log is drained so the server never
    // blocks on a full pipe.
    CompletableFuture<String> address = new CompletableFuture<>();
    Thread reader =
        new Thread(
            () -> {
              Pattern pattern = Pattern.compile("http://([0-9.]+:\\d+)");
              try (BufferedReader lines =
                  new BufferedReader(
                      new InputStreamReader(server.getErrorStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = lines.readLine()) != null) {
                  Matcher match = pattern.matcher(line);
                  if (!address.isDone() && match.find()) address.complete(match.group(1));
                }
              } catch (IOException e) {
                address.completeExceptionally(e);
              }
              address.completeExceptionally(new IllegalStateException("livehub exited"));
            });
    reader.setDaemon(true);
    reader.start();
    url = "http://" + address.get(WAIT_SECS, TimeUnit.SECONDS);
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (server != null) {
      server.destroy();
      server.waitFor(WAIT_SECS, TimeUnit.SECONDS);
    }
  }

  static HubConnection connect(Mode mode) {
    HttpHubConnectionBuilder builder = HubConnectionBuilder.create(url + "/hubs/live");
    switch (mode) {
      case WEBSOCKETS -> builder.withTransport(TransportEnum.WEBSOCKETS);
      case WEBSOCKETS_WITHOUT_NEGOTIATE ->
          builder.withTransport(TransportEnum.WEBSOCKETS).shouldSkipNegotiate(true);
      case LONG_POLLING -> builder.withTransport(TransportEnum.LONG_POLLING);
    }
    return builder.build();
  }

  static void start(HubConnection hub) {
    assertTrue(hub.start().blockingAwait(WAIT_SECS, TimeUnit.SECONDS), "the connection starts");
    assertEquals(HubConnectionState.CONNECTED, hub.getConnectionState());
  }

  static void stop(HubConnection hub) {
    assertTrue(hub.stop().blockingAwait(WAIT_SECS, TimeUnit.SECONDS), "the connection stops");
  }

  /** Collects the {@code Receive} invocations of {@code hub}. */
  static BlockingQueue<Received> receive(HubConnection hub) {
    BlockingQueue<Received> got = new LinkedBlockingQueue<>();
    hub.on("Receive", (channel, message) -> got.add(new Received(channel, message)), String.class, Message.class);
    return got;
  }

  /** The next {@code Receive} invocation, whose channel argument must be its message's. */
  static Message nextReceived(BlockingQueue<Received> got, String what) throws InterruptedException {
    Received received = next(got, what);
    assertEquals(received.channel(), received.message().channel, "Receive's channel argument");
    return received.message();
  }

  static <T> T await(Single<T> single) {
    return single.timeout(WAIT_SECS, TimeUnit.SECONDS).blockingGet();
  }

  static <T> T next(BlockingQueue<T> queue, String what) throws InterruptedException {
    T item = queue.poll(WAIT_SECS, TimeUnit.SECONDS);
    assertNotNull(item, "timed out waiting for " + what);
    return item;
  }

  static void waitFor(BooleanSupplier condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECS);
    while (!condition.getAsBoolean()) {
      assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
      Thread.sleep(20);
    }
  }

  static String channel(Mode mode) {
    return "java/" + mode.name().toLowerCase() + "/" + unique.incrementAndGet();
  }

  static JsonElement json(String text) {
    return JsonParser.parseString(text);
  }

  /** Publishes over the HTTP API ({@code POST /api/publish}); returns its answer. */
  static JsonObject publishHttp(String channel, String dataJson) throws Exception {
    JsonObject body = new JsonObject();
    body.addProperty("channel", channel);
    body.add("data", json(dataJson));
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(url + "/api/publish"))
            .header("content-type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body.toString()))
            .build();
    HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode(), response.body());
    return json(response.body()).getAsJsonObject();
  }

  static int presence(HubConnection hub, String channel) {
    return await(hub.invoke(JsonObject.class, "Presence", channel)).get("subscribers").getAsInt();
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(Mode.class)
  @DisplayName("subscribe, receive a publication from the HTTP API, publish, history, presence")
  void subscribesReceivesPublishesAndReadsHistory(Mode mode) throws Exception {
    HubConnection hub = connect(mode);
    BlockingQueue<Received> got = receive(hub);
    start(hub);
    try {
      String name = channel(mode);
      JsonObject subscribed = await(hub.invoke(JsonObject.class, "Subscribe", List.of(name)));
      JsonObject entry = subscribed.getAsJsonObject(name);
      assertNotNull(entry, subscribed.toString());
      assertFalse(entry.get("recovered").getAsBoolean());
      assertEquals(0, entry.getAsJsonObject("position").get("offset").getAsLong());

      // A publication over the HTTP API reaches the Java client as Receive(channel, message).
      JsonObject ack = publishHttp(name, "{\"n\":1}");
      Message first = nextReceived(got, "the HTTP API's publication");
      assertEquals(name, first.channel);
      assertEquals(json("{\"n\":1}"), first.data);
      assertEquals(1, first.offset);
      assertEquals(ack.get("epoch").getAsString(), first.epoch);
      assertTrue(first.ts > 0, "ts is set");

      // Publish from the Java client: a result, then the message back as a subscriber.
      JsonObject published = await(hub.invoke(JsonObject.class, "Publish", name, Map.of("n", 2)));
      assertEquals(name, published.get("channel").getAsString());
      assertEquals(2, published.get("offset").getAsLong());
      assertEquals(first.epoch, published.get("epoch").getAsString());
      assertFalse(published.get("duplicate").getAsBoolean());
      Message second = nextReceived(got, "the client's own publication");
      assertEquals(json("{\"n\":2}"), second.data);
      assertEquals(2, second.offset);

      // With an idempotency key, a retry is stored once.
      JsonObject keyed = await(hub.invoke(JsonObject.class, "Publish", name, "three", "key-3"));
      JsonObject retried = await(hub.invoke(JsonObject.class, "Publish", name, "three", "key-3"));
      assertEquals(3, keyed.get("offset").getAsLong());
      assertFalse(keyed.get("duplicate").getAsBoolean());
      assertEquals(3, retried.get("offset").getAsLong());
      assertTrue(retried.get("duplicate").getAsBoolean());
      assertEquals(json("\"three\""), nextReceived(got, "the keyed publication").data);

      JsonObject history = await(hub.invoke(JsonObject.class, "History", name));
      assertEquals(3, history.get("offset").getAsLong());
      JsonArray publications = history.getAsJsonArray("publications");
      List<JsonElement> data = new ArrayList<>();
      for (JsonElement p : publications) data.add(p.getAsJsonObject().get("data"));
      assertEquals(List.of(json("{\"n\":1}"), json("{\"n\":2}"), json("\"three\"")), data);
      // The newest `limit` only, after `since` omitted (null).
      JsonObject last = await(hub.invoke(JsonObject.class, "History", name, null, 1));
      assertEquals(1, last.getAsJsonArray("publications").size());
      assertEquals(3, last.getAsJsonArray("publications").get(0).getAsJsonObject().get("offset").getAsLong());

      assertEquals(1, presence(hub, name));
      assertTrue(got.isEmpty(), "nothing else was received");
    } finally {
      stop(hub);
    }
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(Mode.class)
  @DisplayName("failed invocations carry livehub's error code; the connection goes on")
  void failedInvocationsCarryLivehubsErrorCode(Mode mode) throws Exception {
    HubConnection hub = connect(mode);
    start(hub);
    try {
      HubException readOnly =
          assertThrows(HubException.class, () -> await(hub.invoke(JsonObject.class, "Publish", "$sys/presence", 1)));
      assertTrue(readOnly.getMessage().startsWith("read_only_channel: "), readOnly.getMessage());

      HubException badName =
          assertThrows(HubException.class, () -> await(hub.invoke(JsonObject.class, "Subscribe", List.of("a+b"))));
      assertTrue(badName.getMessage().startsWith("invalid_channel: "), badName.getMessage());

      HubException pattern =
          assertThrows(HubException.class, () -> await(hub.invoke(JsonObject.class, "Publish", "java/#", 1)));
      assertTrue(pattern.getMessage().startsWith("invalid_channel: "), pattern.getMessage());

      HubException arity =
          assertThrows(HubException.class, () -> await(hub.invoke(JsonObject.class, "Publish", "java/x")));
      assertTrue(arity.getMessage().startsWith("Failed to invoke 'Publish': "), arity.getMessage());

      HubException unknown = assertThrows(HubException.class, () -> await(hub.invoke(JsonObject.class, "Shout", 1)));
      assertTrue(unknown.getMessage().startsWith("Failed to invoke 'Shout': "), unknown.getMessage());

      // The connection goes on after every one of these.
      assertEquals(HubConnectionState.CONNECTED, hub.getConnectionState());
      JsonObject ok = await(hub.invoke(JsonObject.class, "Publish", channel(mode), true));
      assertEquals(1, ok.get("offset").getAsLong());
    } finally {
      stop(hub);
    }
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(Mode.class)
  @DisplayName("stream a channel until cancelled")
  void streamsAChannelUntilCancelled(Mode mode) throws Exception {
    HubConnection hub = connect(mode);
    BlockingQueue<Received> got = receive(hub);
    start(hub);
    try {
      String name = channel(mode);
      String marker = channel(mode);
      await(hub.invoke(JsonObject.class, "Subscribe", List.of(marker)));

      BlockingQueue<Message> items = new LinkedBlockingQueue<>();
      BlockingQueue<Throwable> errors = new LinkedBlockingQueue<>();
      Disposable stream = hub.stream(Message.class, "Stream", name).subscribe(items::add, errors::add);
      waitFor(() -> presence(hub, name) == 1, "the stream to join the channel");
      publishHttp(name, "\"a\"");
      publishHttp(name, "\"b\"");
      Message a = next(items, "the first stream item");
      Message b = next(items, "the second stream item");
      assertEquals(List.of(json("\"a\""), json("\"b\"")), List.of(a.data, b.data));
      assertEquals(List.of(1L, 2L), List.of(a.offset, b.offset));

      // Disposing the subscription sends CancelInvocation. The client itself drops items of a
      // stream it disposed, so what shows the server stopped streaming is Presence: this
      // connection no longer receives the channel.
      stream.dispose();
      waitFor(() -> presence(hub, name) == 0, "the cancel to leave the channel");
      // The connection goes on: a publication after the cancel reaches the subscribed marker
      // channel, and the disposed stream neither got an item nor failed.
      publishHttp(name, "\"c\"");
      publishHttp(marker, "\"after\"");
      assertEquals(json("\"after\""), nextReceived(got, "the marker publication").data);
      assertTrue(items.isEmpty(), "nothing streamed after the cancel");
      assertTrue(errors.isEmpty(), "the stream did not fail: " + errors);
    } finally {
      stop(hub);
    }
  }

  /**
   * Over WebSockets only: the Java client's long polling sends each record in a POST of its own
   * without waiting for the previous one (LongPollingTransport.send), so records sent in quick
   * succession, like an upload's items and its completion, can reach any server out of order.
   */
  @ParameterizedTest(name = "{0}")
  @EnumSource(value = Mode.class, mode = EnumSource.Mode.EXCLUDE, names = "LONG_POLLING")
  @DisplayName("upload a client stream: each item published in order")
  void uploadsAClientStream(Mode mode) throws Exception {
    HubConnection hub = connect(mode);
    start(hub);
    try {
      String target = channel(mode);
      ReplaySubject<Map<String, Integer>> upload = ReplaySubject.create();
      Single<JsonObject> uploaded = hub.invoke(JsonObject.class, "Upload", target, upload);
      for (int n = 1; n <= 3; n++) upload.onNext(Map.of("n", n));
      upload.onComplete();
      JsonObject result = await(uploaded);
      assertEquals(target, result.get("channel").getAsString());
      assertEquals(3, result.get("published").getAsInt());
      assertEquals(3, result.get("offset").getAsLong());
      JsonObject history = await(hub.invoke(JsonObject.class, "History", target));
      List<JsonElement> data = new ArrayList<>();
      for (JsonElement p : history.getAsJsonArray("publications")) data.add(p.getAsJsonObject().get("data"));
      assertEquals(List.of(json("{\"n\":1}"), json("{\"n\":2}"), json("{\"n\":3}")), data);
    } finally {
      stop(hub);
    }
  }

  @ParameterizedTest(name = "{0}")
  @EnumSource(Mode.class)
  @DisplayName("a clean stop that the server sees")
  void stopsCleanly(Mode mode) throws Exception {
    HubConnection hub = connect(mode);
    HubConnection observer = connect(Mode.WEBSOCKETS);
    CompletableFuture<Exception> closed = new CompletableFuture<>();
    hub.onClosed(closed::complete);
    start(hub);
    start(observer);
    try {
      String name = channel(mode);
      await(hub.invoke(JsonObject.class, "Subscribe", List.of(name)));
      assertEquals(1, presence(observer, name));

      stop(hub);
      // A stop the client asked for closes without an error, and the server lets the
      // connection go: its subscription is gone.
      assertNull(closed.get(WAIT_SECS, TimeUnit.SECONDS), "onClosed gets no error");
      assertEquals(HubConnectionState.DISCONNECTED, hub.getConnectionState());
      waitFor(() -> presence(observer, name) == 0, "the server to drop the stopped connection");
      assertThrows(RuntimeException.class, () -> await(hub.invoke(JsonObject.class, "Presence", name)));
    } finally {
      stop(observer);
    }
  }
}
