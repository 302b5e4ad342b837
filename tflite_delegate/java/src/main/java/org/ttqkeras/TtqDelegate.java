package org.ttqkeras;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.tensorflow.lite.Delegate;

/**
 * The TTQ delegate for TFLite's Java {@code Interpreter}: runs the packed ternary ops
 * (TTQ_CONV_2D, TTQ_DEPTHWISE_CONV_2D, TTQ_FULLY_CONNECTED) of a model written by
 * {@code ttq_keras.convert()}. Without it those custom ops are unresolved and the interpreter
 * cannot run the model.
 *
 * <pre>{@code
 * try (TtqDelegate ttq = new TtqDelegate(
 *          new TtqDelegate.Options().setMode(TtqDelegate.Mode.FAST).setNumThreads(2));
 *      Interpreter interpreter =
 *          new Interpreter(modelBuffer, new Interpreter.Options().addDelegate(ttq))) {
 *   interpreter.run(input, output);
 * }
 * }</pre>
 *
 * <p>Close the delegate after every interpreter using it is closed (try-with-resources closes in
 * reverse order, as above). The native code is in {@code libttq_delegate_jni.so}, loaded with
 * {@code System.loadLibrary("ttq_delegate_jni")} (an app ships it in {@code jniLibs/<abi>/}).
 *
 * <p>Like {@code NnApiDelegate}, this hands TFLite a native {@code TfLiteDelegate*}, so the app
 * must use the regular TFLite / LiteRT runtime ({@code org.tensorflow:tensorflow-lite} or {@code
 * com.google.ai.edge.litert:litert}), not the Play-services runtime (stable ABI, opaque
 * delegates).
 */
public final class TtqDelegate implements Delegate, AutoCloseable {
  /** Numeric mode of every delegated op. */
  public enum Mode {
    /** Float activations; matches the float Keras model up to float rounding (the default). */
    EXACT("exact"),
    /**
     * Activations quantized dynamically to int8 (one scale per input row / image), int32 sums:
     * faster, with an error of about 1% of the output range.
     */
    FAST("fast");

    private final String optionValue;

    Mode(String optionValue) {
      this.optionValue = optionValue;
    }
  }

  /** Options of a {@link TtqDelegate}; the setters return {@code this} for chaining. */
  public static final class Options {
    private Mode mode = Mode.EXACT;
    private int numThreads = 1;

    public Options() {}

    /** Numeric mode (default {@link Mode#EXACT}). */
    public Options setMode(Mode mode) {
      if (mode == null) {
        throw new NullPointerException("TtqDelegate.Options: mode must not be null");
      }
      this.mode = mode;
      return this;
    }

    /**
     * Threads one op may use, the calling thread included (default 1). Must be in [1, 1024]; the
     * delegate's constructor throws {@link IllegalArgumentException} otherwise.
     */
    public Options setNumThreads(int numThreads) {
      this.numThreads = numThreads;
      return this;
    }

    public Mode getMode() {
      return mode;
    }

    public int getNumThreads() {
      return numThreads;
    }
  }

  /** One op the delegate took over, as reported after the interpreter was created. */
  public static final class DelegatedNode {
    /** The op's index in the model's subgraph. */
    public final int nodeIndex;
    /** Its custom op name, e.g. "TTQ_CONV_2D". */
    public final String opName;
    /** The kernel chosen for it, e.g. "reference" ("" before the interpreter initialized it). */
    public final String kernel;

    DelegatedNode(int nodeIndex, String opName, String kernel) {
      this.nodeIndex = nodeIndex;
      this.opName = opName;
      this.kernel = kernel;
    }

    @Override
    public String toString() {
      return "DelegatedNode(" + nodeIndex + ", " + opName + ", " + kernel + ")";
    }
  }

  /** The name given to {@code System.loadLibrary}. */
  public static final String LIBRARY_NAME = "ttq_delegate_jni";

  static {
    System.loadLibrary(LIBRARY_NAME);
  }

  private long nativeHandle;

  /** A delegate with the default options (exact mode, one thread). */
  public TtqDelegate() {
    this(new Options());
  }

  /**
   * @throws IllegalArgumentException an option is out of range (the message names it).
   */
  public TtqDelegate(Options options) {
    if (options == null) {
      throw new NullPointerException("TtqDelegate: options must not be null");
    }
    nativeHandle =
        nativeCreate(
            new String[] {"mode", "num_threads"},
            new String[] {options.getMode().optionValue, Integer.toString(options.getNumThreads())});
  }

  /**
   * The native {@code TfLiteDelegate*} that {@code Interpreter.Options.addDelegate} passes on.
   *
   * @throws IllegalStateException the delegate was closed.
   */
  @Override
  public synchronized long getNativeHandle() {
    if (nativeHandle == 0) {
      throw new IllegalStateException("TtqDelegate: the delegate is closed");
    }
    return nativeHandle;
  }

  /** The ops this delegate took over (empty until an interpreter was created with it). */
  public synchronized List<DelegatedNode> getDelegatedNodes() {
    String[] flat = nativeDelegatedNodes(getNativeHandle());
    List<DelegatedNode> nodes = new ArrayList<>(flat.length / 3);
    for (int i = 0; i + 2 < flat.length; i += 3) {
      nodes.add(new DelegatedNode(Integer.parseInt(flat[i]), flat[i + 1], flat[i + 2]));
    }
    return Collections.unmodifiableList(nodes);
  }

  /** Frees the native delegate; idempotent. Call it after the interpreters using it are closed. */
  @Override
  public synchronized void close() {
    if (nativeHandle != 0) {
      nativeDelete(nativeHandle);
      nativeHandle = 0;
    }
  }

  private static native long nativeCreate(String[] keys, String[] values);

  private static native void nativeDelete(long handle);

  private static native String[] nativeDelegatedNodes(long handle);
}
