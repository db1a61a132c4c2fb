package livehub;

import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Prints one "ok -" or "not ok -" line per test and a closing count, since `mvn -q` hides
 * Surefire's own summary (a failure still prints Surefire's report and fails the build).
 */
public class Report implements TestWatcher, AfterAllCallback {
  private static final AtomicInteger passed = new AtomicInteger();
  private static final AtomicInteger failed = new AtomicInteger();

  private static String name(ExtensionContext context) {
    String parent = context.getParent().map(ExtensionContext::getDisplayName).orElse("");
    return "signalr java: " + context.getDisplayName() + ": " + parent;
  }

  @Override
  public void testSuccessful(ExtensionContext context) {
    passed.incrementAndGet();
    System.out.println("ok - " + name(context));
  }

  @Override
  public void testFailed(ExtensionContext context, Throwable cause) {
    failed.incrementAndGet();
    System.out.println("not ok - " + name(context) + ": " + cause);
  }

  @Override
  public void testAborted(ExtensionContext context, Throwable cause) {
    failed.incrementAndGet();
    System.out.println("not ok - " + name(context) + " (aborted): " + cause);
  }

  @Override
  public void testDisabled(ExtensionContext context, Optional<String> reason) {
    failed.incrementAndGet();
    System.out.println("not ok - " + name(context) + " (disabled, which this suite never is)");
  }

  @Override
  public void afterAll(ExtensionContext context) {
    System.out.println("signalr java: " + passed.get() + " passed, " + failed.get() + " failed");
  }
}
