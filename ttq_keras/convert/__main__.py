"""python -m ttq_keras.convert MODEL OUTPUT.tflite [--portable [--int8]] [--allow-float-fallback]"""

import sys

from ttq_keras.lite.converter import main

if __name__ == "__main__":
    sys.exit(main())
