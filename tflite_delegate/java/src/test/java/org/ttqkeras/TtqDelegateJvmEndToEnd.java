package org.ttqkeras;

import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterAllocateTensors;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterCreate;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterDelete;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterGetInputTensor;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterGetOutputTensor;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterInvoke;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterOptionsAddDelegate;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterOptionsCreate;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterOptionsDelete;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterOptionsSetNumThreads;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteInterpreterResizeInputTensor;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteModelCreateFromFile;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteModelDelete;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteTensorByteSize;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteTensorCopyFromBuffer;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteTensorCopyToBuffer;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.TfLiteVersion;
import static org.bytedeco.tensorflowlite.global.tensorflowlite.kTfLiteOk;

import java.nio.file.Files;
import java.nio.file.Paths;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.tensorflowlite.TfLiteInterpreter;
import org.bytedeco.tensorflowlite.TfLiteInterpreterOptions;
import org.bytedeco.tensorflowlite.TfLiteModel;
import org.bytedeco.tensorflowlite.TfLiteOpaqueDelegateStruct;
import org.bytedeco.tensorflowlite.TfLiteTensor;

/**
 * Host-JVM end to end: a packed model runs in a real TFLite runtime (2.18.0's C API, called from
 * Java through the JavaCPP presets, org.bytedeco:tensorflow-lite) with the delegate that {@link
 * TtqDelegate} created; its {@link TtqDelegate#getNativeHandle()} is handed over exactly as
 * Android's {@code Interpreter.Options.addDelegate} hands it to TFLite's native code.
 *
 * <p>Usage: {@code TtqDelegateJvmEndToEnd MODEL INPUT.bin OUTPUT.bin exact|fast THREADS
 * D0,D1,...} (input 0 is resized to the shape; files hold raw float32). Prints "runtime VERSION"
 * and one "node INDEX OP KERNEL" line per delegated node. Driven by tests/jni_test.py.
 */
public final class TtqDelegateJvmEndToEnd {
  /** A JavaCPP pointer at a raw native address. */
  private static final class Address extends Pointer {
    Address(long value) {
      address = value;
    }
  }

  private static void check(boolean ok, String what) {
    if (!ok) {
      throw new IllegalStateException("TtqDelegateJvmEndToEnd: " + what + " failed");
    }
  }

  public static void main(String[] args) throws Exception {
    String[] dims = args[5].split(",");
    int[] shape = new int[dims.length];
    for (int i = 0; i < dims.length; ++i) {
      shape[i] = Integer.parseInt(dims[i]);
    }
    TtqDelegate.Options options =
        new TtqDelegate.Options()
            .setMode(TtqDelegate.Mode.valueOf(args[3].toUpperCase(java.util.Locale.ROOT)))
            .setNumThreads(Integer.parseInt(args[4]));
    try (TtqDelegate ttq = new TtqDelegate(options)) {
      TfLiteModel model = TfLiteModelCreateFromFile(args[0]);
      check(model != null && !model.isNull(), "TfLiteModelCreateFromFile");
      TfLiteInterpreterOptions interpreterOptions = TfLiteInterpreterOptionsCreate();
      TfLiteInterpreterOptionsSetNumThreads(interpreterOptions, options.getNumThreads());
      TfLiteInterpreterOptionsAddDelegate(
          interpreterOptions, new TfLiteOpaqueDelegateStruct(new Address(ttq.getNativeHandle())));
      TfLiteInterpreter interpreter = TfLiteInterpreterCreate(model, interpreterOptions);
      check(interpreter != null && !interpreter.isNull(), "TfLiteInterpreterCreate");
      check(
          TfLiteInterpreterResizeInputTensor(interpreter, 0, shape, shape.length) == kTfLiteOk,
          "ResizeInputTensor");
      check(TfLiteInterpreterAllocateTensors(interpreter) == kTfLiteOk, "AllocateTensors");
      byte[] input = Files.readAllBytes(Paths.get(args[1]));
      TfLiteTensor inputTensor = TfLiteInterpreterGetInputTensor(interpreter, 0);
      check(TfLiteTensorByteSize(inputTensor) == input.length, "input size");
      check(
          TfLiteTensorCopyFromBuffer(inputTensor, new BytePointer(input), input.length)
              == kTfLiteOk,
          "CopyFromBuffer");
      check(TfLiteInterpreterInvoke(interpreter) == kTfLiteOk, "Invoke");
      TfLiteTensor outputTensor = TfLiteInterpreterGetOutputTensor(interpreter, 0);
      long size = TfLiteTensorByteSize(outputTensor);
      BytePointer outputBuffer = new BytePointer(size);
      check(TfLiteTensorCopyToBuffer(outputTensor, outputBuffer, size) == kTfLiteOk, "CopyToBuffer");
      byte[] output = new byte[(int) size];
      outputBuffer.get(output);
      Files.write(Paths.get(args[2]), output);
      System.out.println("runtime " + TfLiteVersion().getString());
      for (TtqDelegate.DelegatedNode node : ttq.getDelegatedNodes()) {
        System.out.println("node " + node.nodeIndex + " " + node.opName + " " + node.kernel);
      }
      TfLiteInterpreterDelete(interpreter); // before the delegate (closed by try)
      TfLiteInterpreterOptionsDelete(interpreterOptions);
      TfLiteModelDelete(model);
    }
  }
}
