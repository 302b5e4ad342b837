package org.ttqkeras;

import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;
import org.tensorflow.lite.Delegate;

/**
 * Host-JVM test of TtqDelegate and its JNI shim (a host build of libttq_delegate_jni.so): the
 * create / options / close cycle and the errors. Plain Java (no test framework to fetch): every
 * public method named test* runs; the process exits with status 1 if any fails. Run by
 * tests/jni_test.py (make test-jni).
 */
public final class TtqDelegateHostTest {
  private static void check(boolean condition, String what) {
    if (!condition) {
      throw new AssertionError(what);
    }
  }

  private static <T extends Throwable> T expectThrows(Class<T> type, Runnable body) {
    try {
      body.run();
    } catch (Throwable t) {
      if (type.isInstance(t)) {
        return type.cast(t);
      }
      throw new AssertionError("expected " + type.getName() + ", got " + t, t);
    }
    throw new AssertionError("expected " + type.getName() + ", nothing was thrown");
  }

  public void testDefaultDelegateIsATfLiteDelegate() {
    Delegate delegate = new TtqDelegate();
    long handle = delegate.getNativeHandle();
    check(handle != 0, "getNativeHandle() returned 0");
    check(handle == delegate.getNativeHandle(), "the handle changed between calls");
    check(((TtqDelegate) delegate).getDelegatedNodes().isEmpty(), "nodes before any interpreter");
    delegate.close();
  }

  public void testOptionsReachTheDelegate() {
    TtqDelegate.Options options =
        new TtqDelegate.Options().setMode(TtqDelegate.Mode.FAST).setNumThreads(2);
    check(options.getMode() == TtqDelegate.Mode.FAST, "mode getter");
    check(options.getNumThreads() == 2, "num_threads getter");
    try (TtqDelegate delegate = new TtqDelegate(options)) {
      check(delegate.getNativeHandle() != 0, "fast/2-thread delegate has no handle");
    }
    TtqDelegate.Options defaults = new TtqDelegate.Options();
    check(defaults.getMode() == TtqDelegate.Mode.EXACT, "default mode is not EXACT");
    check(defaults.getNumThreads() == 1, "default num_threads is not 1");
  }

  public void testCloseIsIdempotentAndInvalidatesTheHandle() {
    TtqDelegate delegate = new TtqDelegate();
    delegate.close();
    delegate.close();
    IllegalStateException e = expectThrows(IllegalStateException.class, delegate::getNativeHandle);
    check(e.getMessage().contains("closed"), "message: " + e.getMessage());
    expectThrows(IllegalStateException.class, delegate::getDelegatedNodes);
  }

  public void testBadNumThreadsThrowsIllegalArgumentException() {
    for (int bad : new int[] {0, -3, 1025}) {
      IllegalArgumentException e =
          expectThrows(
              IllegalArgumentException.class,
              () -> new TtqDelegate(new TtqDelegate.Options().setNumThreads(bad)));
      String want = "option 'num_threads' must be an integer in [1, 1024]; got '" + bad + "'";
      check(e.getMessage().contains(want), "message: " + e.getMessage());
    }
  }

  public void testNullOptionsThrowNullPointerException() {
    NullPointerException e =
        expectThrows(
            NullPointerException.class, () -> new TtqDelegate.Options().setMode(null));
    check(e.getMessage().contains("mode"), "message: " + e.getMessage());
    expectThrows(NullPointerException.class, () -> new TtqDelegate(null));
  }

  public void testManyCreateCloseCycles() {
    // Catches a native double free or a handle reused after close (ASan-free smoke test).
    List<TtqDelegate> live = new ArrayList<>();
    for (int i = 0; i < 200; ++i) {
      live.add(
          new TtqDelegate(
              new TtqDelegate.Options()
                  .setMode(i % 2 == 0 ? TtqDelegate.Mode.EXACT : TtqDelegate.Mode.FAST)
                  .setNumThreads(1 + i % 3)));
    }
    java.util.Set<Long> handles = new java.util.HashSet<>();
    for (TtqDelegate d : live) {
      check(handles.add(d.getNativeHandle()), "two live delegates share a handle");
    }
    for (TtqDelegate d : live) {
      d.close();
    }
  }

  public static void main(String[] args) throws Exception {
    TtqDelegateHostTest suite = new TtqDelegateHostTest();
    int failures = 0;
    int run = 0;
    for (Method m : TtqDelegateHostTest.class.getDeclaredMethods()) {
      if (!m.getName().startsWith("test")) {
        continue;
      }
      ++run;
      try {
        m.invoke(suite);
        System.out.println("PASS " + m.getName());
      } catch (java.lang.reflect.InvocationTargetException e) {
        ++failures;
        System.out.println("FAIL " + m.getName() + ": " + e.getCause());
        e.getCause().printStackTrace(System.out);
      }
    }
    System.out.println(run + " tests, " + failures + " failures");
    System.exit(failures == 0 && run > 0 ? 0 : 1);
  }
}
