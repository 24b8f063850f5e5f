"""The pieces of :func:`cellfie_caiman.train.train`, one idea per module.

* :mod:`.fields`: a training field (normalised inputs and U-Net targets at one zoom) from summary images and masks;
* :mod:`.simulated`: varied simulated fields from the package's simulators;
* :mod:`.sampling`: augmented U-Net crops and instance windows, and the current model's errors to train on;
* :mod:`.validation`: one-pass detection on the held-out strips and the scores that pick the best epoch;
* :mod:`.steps`: one update of each network under TensorFlow or PyTorch, seeding, copies of networks.
"""
