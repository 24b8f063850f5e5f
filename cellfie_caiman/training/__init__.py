"""The pieces of :func:`cellfie_caiman.train.train`, one idea per module.

* :mod:`.fields`: a training field (normalised inputs and U-Net targets at one zoom) from summary images and masks;
* :mod:`.simulated`: varied simulated fields from the package's simulators;
* :mod:`.sampling`: augmented U-Net crops and instance windows, and the current model's errors to train on;
* :mod:`.validation`: one-pass detection on the held-out strips and the scores that pick the best epoch;
* :mod:`.steps`: one update of each network under TensorFlow or PyTorch, seeding, copies of networks;
* :mod:`.settings`: the settings checked before any data is read (weights path, ranges, channels);
* :mod:`.datasets`: the annotated datasets given (read once, recorded, repeats, regions, scale) made training fields;
* :mod:`.annotation_check`: whether each dataset's ROIs line up with its movie (the shipped model's detections);
* :mod:`.neuron_counts`: the neurons in each field's training rows and validation strip, and the checks on them;
* :mod:`.fit`: the networks training starts from and the epoch loop that keeps the best validation epoch.
"""
