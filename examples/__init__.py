"""Runnable experiments for ttq_keras (Zhu et al., Trained Ternary Quantization, ICLR 2017).

- `python -m examples.cifar_resnet`: pre-activation ResNet-(6n+2) on CIFAR-10 or Fashion-MNIST.
- `python -m examples.imagenet_alexnet`: BN AlexNet on ImageNet (or `--synthetic`).

See examples/README.md.
"""
