// Sketch (not built in CI; see examples/android/README.md): runs a packed ternary model written
// by ttq_keras.convert() with the TTQ delegate.
package org.ttqkeras.example

import android.content.Context
import android.util.Log
import java.io.FileInputStream
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import org.tensorflow.lite.Interpreter
import org.ttqkeras.TtqDelegate

class TtqClassifier(context: Context, modelAsset: String = "model.tflite") : AutoCloseable {
    // FAST: int8 activations (about 1% of the output range); EXACT: float, matches Keras.
    private val ttq = TtqDelegate(
        TtqDelegate.Options().setMode(TtqDelegate.Mode.FAST).setNumThreads(2)
    )
    private val interpreter = Interpreter(
        loadModel(context, modelAsset),
        Interpreter.Options().addDelegate(ttq).setNumThreads(2),
    )

    init {
        // Every TTQ op should be listed; an op missing here would have failed to run at all.
        Log.i(TAG, "delegated: ${ttq.delegatedNodes}")
    }

    /** [input] is NHWC float32, shaped like the model's input; returns the first output row. */
    fun classify(input: Array<Array<Array<FloatArray>>>): FloatArray {
        val numClasses = interpreter.getOutputTensor(0).shape()[1]
        val output = Array(1) { FloatArray(numClasses) }
        interpreter.run(input, output)
        return output[0]
    }

    override fun close() {
        interpreter.close()
        ttq.close() // after the interpreter that uses it
    }

    private companion object {
        const val TAG = "TtqClassifier"

        fun loadModel(context: Context, asset: String): MappedByteBuffer {
            context.assets.openFd(asset).use { fd ->
                FileInputStream(fd.fileDescriptor).channel.use { channel ->
                    return channel.map(
                        FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength
                    )
                }
            }
        }
    }
}
