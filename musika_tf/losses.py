"""Losses of all training stages (paper section 3; reference sections 3, 4.9, 4.10).

Shapes: critic logits ``[batch, 1]`` (any shape works, means are global); waveforms
``[batch, samples]``; spectrograms ``[batch, frames, bins]``.
"""

from __future__ import annotations

import tensorflow as tf

LOG_EPS = 1e-7


def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean absolute error."""
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def mse(target: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """Mean squared error in float32."""
    return tf.reduce_mean(tf.square(tf.cast(target, tf.float32) - tf.cast(pred, tf.float32)))


def msesum(target: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """Reference ``msesum``: mean over all but the channel axis of ``sum_c (x - y)^2 + 1e-7``."""
    diff = tf.cast(target, tf.float32) - tf.cast(pred, tf.float32)
    return tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=-1) + 1e-7)


def hinge_critic(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Hinge critic terms ``(mean relu(1 - D(real)), mean relu(1 + D(fake)))``."""
    real = tf.reduce_mean(tf.nn.relu(1.0 - tf.cast(real_logits, tf.float32)))
    fake = tf.reduce_mean(tf.nn.relu(1.0 + tf.cast(fake_logits, tf.float32)))
    return real, fake


def hinge_generator(fake_logits: tf.Tensor) -> tf.Tensor:
    """Generator/decoder adversarial loss ``-mean D(fake)``."""
    return -tf.reduce_mean(tf.cast(fake_logits, tf.float32))


def stft_magnitude(wave: tf.Tensor, n_fft: int) -> tf.Tensor:
    """``|STFT|`` with window n_fft, hop n_fft/4 (Hann): ``[..., samples] -> [..., frames, n_fft/2+1]``."""
    spec = tf.signal.stft(tf.cast(wave, tf.float32), frame_length=n_fft, frame_step=n_fft // 4,
                          fft_length=n_fft, window_fn=tf.signal.hann_window)
    return tf.abs(spec)


def multiscale_spectral_distance(real: tf.Tensor, fake: tf.Tensor, fft_sizes,
                                 mean=tf.reduce_mean) -> tf.Tensor:
    """Paper's L_ms: ``sum over resolutions of log(mean | |STFT(real)| - |STFT(fake)| |)``.

    `real`, `fake`: waveforms ``[batch, samples]`` of equal length; one term per FFT size (hop =
    size/4). The mean (rather than sum) only shifts each log by a constant. `mean` reduces a
    tensor to its scalar mean (training on several replicas passes the global-batch mean, since
    the log of a mean is not the mean of per-replica logs).
    """
    total = 0.0
    for n_fft in fft_sizes:
        diff = stft_magnitude(real, n_fft) - stft_magnitude(fake, n_fft)
        total += tf.math.log(mean(tf.abs(diff)) + LOG_EPS)
    return total


def log_spectral_distance(real: tf.Tensor, fake: tf.Tensor, fft_sizes) -> tf.Tensor:
    """Evaluation metric: mean over resolutions of the RMS difference of log10 power, in dB."""
    values = []
    for n_fft in fft_sizes:
        a = 10.0 * tf.math.log(stft_magnitude(real, n_fft) ** 2 + 1e-10) / tf.math.log(10.0)
        b = 10.0 * tf.math.log(stft_magnitude(fake, n_fft) ** 2 + 1e-10) / tf.math.log(10.0)
        values.append(tf.sqrt(tf.reduce_mean(tf.square(a - b))))
    return tf.reduce_mean(tf.stack(values))


def spectral_convergence(real: tf.Tensor, fake: tf.Tensor, fft_sizes) -> tf.Tensor:
    """Evaluation metric: mean over resolutions of ``||S - S^||_F / ||S||_F`` on magnitudes."""
    values = []
    for n_fft in fft_sizes:
        a, b = stft_magnitude(real, n_fft), stft_magnitude(fake, n_fft)
        values.append(tf.norm(a - b) / (tf.norm(a) + LOG_EPS))
    return tf.reduce_mean(tf.stack(values))


INPUT_GRADIENT_SCALE = 2.0 ** 10  # float16 critics: the penalty's backward pass runs scaled by this


def _squared_input_gradient(critic, real: tf.Tensor, training: bool) -> tf.Tensor:
    """Per example ``sum (d sum D(real) / d real)^2`` ``[batch]``; a critic returning several
    outputs is judged by its first (the logit).

    A float16 critic (mixed precision) back-propagates ``INPUT_GRADIENT_SCALE * sum D`` and the
    gradient is unscaled in float32, so input gradients down to ~6e-11 do not underflow to 0.
    """
    half = getattr(critic, "compute_dtype", "float32") == "float16"
    scale = INPUT_GRADIENT_SCALE if half else 1.0
    with tf.GradientTape() as tape:
        tape.watch(real)
        logits = critic(real, training=training)
        logits = logits[0] if isinstance(logits, (list, tuple)) else logits
        total = tf.reduce_sum(tf.cast(logits, tf.float32)) * scale
    grads = tf.cast(tape.gradient(total, real), tf.float32) / scale
    return tf.reduce_sum(tf.square(grads), axis=list(range(1, len(grads.shape))))


def r1_penalty(critic, real: tf.Tensor, training: bool = True) -> tf.Tensor:
    """Zero-centred R1: batch mean of the squared input-gradient norm (reference 4.9.5)."""
    return tf.reduce_mean(_squared_input_gradient(critic, real, training))


def one_centred_gradient_penalty(critic, real: tf.Tensor, training: bool = True) -> tf.Tensor:
    """Paper-variant GP at real points: ``mean((sqrt(1e-6 + |grad|^2) - 1)^2)`` (reference 4.10.5)."""
    norm = tf.sqrt(1e-6 + _squared_input_gradient(critic, real, training))
    return tf.reduce_mean(tf.square(norm - 1.0))


def next_r1_switch(switch: tf.Tensor, real_logits: tf.Tensor, fake_logits: tf.Tensor,
                   step: float = 1e-4, mean=tf.reduce_mean) -> tf.Tensor:
    """Adaptive R1 weight (reference 4.9.4): certainty ``clip(mean D_r - mean D_f, 0, 2)/2``;
    above 0.9 the switch (in [-1, 0]) moves down by `step`, else up. Returns the new switch value
    (the caller stores it once the update is applied); the penalty weight is
    ``gp_max_weight * (-switch)``. `mean` reduces logits to their scalar mean (on several replicas:
    the global-batch mean, so every replica moves the switch alike)."""
    gap = mean(tf.cast(real_logits, tf.float32)) - mean(tf.cast(fake_logits, tf.float32))
    certainty = tf.clip_by_value(gap, 0.0, 2.0) / 2.0
    delta = tf.where(certainty > 0.9, -step, step)
    return tf.clip_by_value(switch + delta, -1.0, 0.0)
