"""Latent GAN: generator, critic and the v22 critic reconstruction head (reference sections 4.4-4.7).

Tensors are channels-last ``[B, 1, T, C]`` (time on the width axis), as in the autoencoder.

Generator: coordinates ``[B, latlen, Cz]`` (``Cz = 2*coorddepth`` + condition channels) -> FOLD(2) ->
each half-window ``z0`` (``T0 = latlen/2`` steps) and its average-pooled pyramid ``z1, z2, ...`` (level l
has ``T0/2^l`` steps) -> a Dense head from the coarsest level -> upsampling units, each modulated by the
pyramid level of its own time length -> UNFOLD(2) -> stereo latents ``[B, 1, latlen, stereo_latent_dim]``.

- v44: pixel-shuffle residual blocks scaled by sqrt(1/2), linear output (``small``: block 1 keeps the
  time length and its shortcut has no pixel shuffle).
- v22: SLE gates instead of residuals, tanh output.

Critic: a full window ``[B, 1, latlen, stereo_latent_dim (+ condition channels)]`` -> strided conv -> ResBlockD stack ->
Dense logit ``[B, 1]``. v22 (or ``critic_reconstruction``) also returns the last feature map, which the
reconstruction head decodes back to the real window.

Conditioning (``preset.gan.cond != 'none'``): extra input channels per latent frame, appended LAST
(`append_condition`): density one (the curve), tempo three (the value and the cosine and sine of the
beat phase, `conditioning.network_condition`). In the generator it travels with the coordinates, so it is
folded and average-pooled with them and enters every modulation and the Dense head; the critic takes it
as an extra input channel (v22: concatenated after the frozen projection, as the reference's
conditional branch does). With ``cond='none'`` the networks are exactly the reference's (the v22
generator with the 128-channel input the reference sampler feeds).

Widths are multiples of ``preset.gan.base_channels`` (C): the v22 reference's fixed widths are its
C = 128 values. Every layer gets its own He-uniform initializer (not the reference's shared instance).
Weight-bearing layers are leaf layers applied in the functional API; their `model.layers` order equals
the reference's Keras-2 order, so `musika_tf.reference` can load the reference .h5 files by order.
"""

from __future__ import annotations

import math

import keras
from keras import layers as L
from keras import ops

from musika_tf import conditioning
from musika_tf.config import Preset
from musika_tf.layers import NoiseInjection, fold, unfold

SQRT_HALF = math.sqrt(0.5)
MOD_EPS = {"v44": 1e-5, "v22": 1e-7}  # modulation: x / (std_t(x) + eps)
INIT = "he_uniform"  # a string: every layer builds its own initializer instance


# ---------------------------------------------------------------------------------------------
# GAN blocks


def _conv(filters: int, kernel: int, stride: int = 1, *, transposed: bool = False, name: str,
          use_bias: bool = True, **kw) -> L.Layer:
    """A 1-D (time) conv or transposed conv with "same" padding: ``[B,1,T,C] -> [B,1,T*s|T/s,filters]``."""
    cls = L.Conv2DTranspose if transposed else L.Conv2D
    return cls(filters, (1, kernel), strides=(1, stride), padding="same", use_bias=use_bias,
               kernel_initializer=INIT, name=name, **kw)


def modulate(x, emb, eps: float, name: str):
    """Scale-only, time-varying modulation ("adain" in the reference).

    ``x`` ``[B,1,T,C]`` is divided by its population std over time (no mean subtraction) and multiplied
    by ``s = Conv1x1(emb)`` ``[B,1,T,C]`` (no shift). ``emb`` ``[B,1,T,Cz]`` has x's time length.
    Under reduced precision the std is taken in float32 (``x^2`` overflows float16 above 256); a
    float32 graph has no extra cast ops, so its layer indices and checkpoints stay as they were.
    """
    scale = _conv(x.shape[-1], 1, name=name)(emb)
    if x.dtype == "float32":
        return x / (ops.std(x, axis=2, keepdims=True) + eps) * scale
    std = ops.std(ops.cast(x, "float32"), axis=2, keepdims=True) + eps
    return x / ops.cast(std, x.dtype) * scale


def gconv(x, filters: int, kernel: int, stride: int, emb, eps: float, name: str, *,
          transposed: bool = False, gate=None):
    """GConv: conv/convT -> NoiseInjection -> modulation by ``emb`` -> swish [-> * SLE gate].

    Layer names ``{name}c``, ``{name}r``, ``{name}ai`` (the reference v44 names).
    """
    x = _conv(filters, kernel, stride, transposed=transposed, name=f"{name}c")(x)
    x = NoiseInjection(name=f"{name}r")(x)
    x = ops.silu(modulate(x, emb, eps, name=f"{name}ai"))
    return x if gate is None else x * gate


def pixel_shuffle(x):
    """1-D pixel shuffle ``[B,1,T,C] -> [B,1,2T,C/2]``: ``out[2t+f, c] = in[t, 2c+f]``."""
    _, h, t, c = x.shape
    x = ops.reshape(x, (-1, h, t, c // 2, 2))
    x = ops.transpose(x, (0, 1, 2, 4, 3))
    return ops.reshape(x, (-1, h, 2 * t, c // 2))


def sle_gate(src, filters: int, name: str):
    """SLE gate: mean over time of ``src`` -> Conv1x1 + swish -> Conv1x1 + sigmoid: ``[B,1,1,filters]``."""
    x = ops.mean(src, axis=2, keepdims=True)
    x = ops.silu(_conv(filters, 1, name=f"{name}0")(x))
    return _conv(filters, 1, name=f"{name}1", activation="sigmoid")(x)


def res_block_d(x, filters: int, kernel: int, name: str, *, first_kernel: int | None = None):
    """ResBlockD, stride 2: ``[B,1,T,Cin] -> [B,1,T/2,filters]``.

    Residual: conv(first_kernel, Cin) -> LReLU -> *sqrt(1/2) -> conv(kernel, s2, filters) -> LReLU ->
    *sqrt(1/2); shortcut: AvgPool(2) then, if widths differ, Conv1x1 without bias; sum.
    """
    h = _conv(x.shape[-1], first_kernel or kernel, name=f"{name}c0")(x)
    h = L.LeakyReLU(0.2)(h) * SQRT_HALF
    h = _conv(filters, kernel, 2, name=f"{name}c1")(h)
    h = L.LeakyReLU(0.2)(h) * SQRT_HALF
    skip = L.AveragePooling2D((1, 2), padding="same")(x)
    if skip.shape[-1] != filters:
        skip = _conv(filters, 1, name=f"{name}c3", use_bias=False)(skip)
    return h + skip


def append_condition(x, curve):
    """Append the condition as the last input channels.

    ``x``: coordinates ``[B, T, C]`` or latents ``[B, 1, T, C]``; ``curve``: network condition
    ``[B, T, K]`` (`conditioning.network_condition`) or one channel ``[B, T]`` -> ``[..., T, C+K]``.
    """
    curve = ops.cast(curve, x.dtype)
    if len(curve.shape) == 2:
        curve = ops.expand_dims(curve, -1)
    if len(x.shape) == 4:
        curve = ops.expand_dims(curve, 1)
    return ops.concatenate([x, curve], axis=-1)


# ---------------------------------------------------------------------------------------------
# Sizes derived from the preset


def condition_channels(preset: Preset) -> int:
    """Extra input channels for conditioning: none 0, density 1, tempo and density with
    ``gan.density_phase`` 3 (value, cos and sin of the phase)."""
    return conditioning.condition_channels(conditioning.network_cond(preset))


def coordinate_channels(preset: Preset) -> int:
    """Generator input width: 2*coorddepth coordinates (+ condition channels)."""
    return 2 * preset.gan.coorddepth + condition_channels(preset)


def _log2(n: int, what: str) -> int:
    k = int(round(math.log2(n))) if n > 0 else -1
    if k < 0 or 2 ** k != n:
        raise ValueError(f"{what} must be a power of two, got {n}")
    return k


def critic_returns_features(preset: Preset) -> bool:
    """Whether the critic outputs ``[logit, features]`` (v22 always; v44 with critic_reconstruction)."""
    return preset.ae.variant == "v22" or preset.gan.critic_reconstruction


# ---------------------------------------------------------------------------------------------
# Generator


def _pyramid(z0, levels: int) -> list:
    """``[z0, z1, ..., z_levels]``: z_l = AvgPool2 applied l times over time."""
    zs = [z0]
    for _ in range(levels):
        zs.append(L.AveragePooling2D((1, 2), padding="valid")(zs[-1]))
    return zs


class _Emb:
    """Picks the pyramid level whose time length matches a feature map."""

    def __init__(self, zs: list):
        self.zs = zs
        self.t0 = zs[0].shape[2]

    def __call__(self, t: int):
        return self.zs[_log2(self.t0 // t, "generator time ratio")]


def _head(zs: list, emb: _Emb, n_up: int, width: int, eps: float, names: tuple):
    """Dense(flatten(z_{n_up+1})) -> [B,1,T0/2^n_up,width] -> noise -> modulation -> swish."""
    t = emb.t0 // 2 ** n_up
    dense, noise, mod = names
    g = L.Dense(t * width, kernel_initializer=INIT, name=dense)(L.Flatten()(zs[n_up + 1]))
    g = L.Reshape((1, t, width))(g)
    g = NoiseInjection(name=noise)(g)
    return ops.silu(modulate(g, emb(t), eps, name=mod))


def _v44_body(zs, emb: _Emb, preset: Preset):
    """Head + four pixel-shuffle residual blocks + unit 8 + linear conv k4: ``[2B,1,T0,out]``."""
    c, small, eps = preset.gan.base_channels, preset.gan.small, MOD_EPS["v44"]
    g = _head(zs, emb, 4 if small else 5, 7 * c, eps, ("00d", "00n", "00ai"))
    for i, mult in enumerate((6, 5, 4, 3)):
        first_small = small and i == 0
        up = 1 if first_small else 2
        t = g.shape[2] * up
        suffix = "_small" if first_small else ""
        h = gconv(g, mult * c, 1 if first_small else 4, up, emb(t), eps, f"{2 * i}{suffix}",
                  transposed=not first_small) * SQRT_HALF
        h = gconv(h, mult * c, 1 if first_small else 4, 1, emb(t), eps, f"{2 * i + 1}{suffix}") * SQRT_HALF
        skip = g if first_small else pixel_shuffle(g)
        g = h + _conv(mult * c, 1, name=f"res{i + 1}c{suffix}")(skip)
    g = gconv(g, 2 * c, 4, 2, emb(2 * g.shape[2]), eps, "8", transposed=True)
    return _conv(preset.stereo_latent_dim, 4, name="9c")(g)


# v22 units: (name, width multiple of C, kernel, upsample, SLE source unit or None)
_V22_UNITS = (
    ("g", 6, 4, True, None), ("g1", 6, 1, False, None),
    ("g2", 5, 4, True, None), ("g2b", 5, 3, False, None),
    ("g3a", 4, 4, True, "g"), ("g3b", 4, 3, False, "g1"),
    ("g4a", 3, 4, True, "g2"), ("g4b", 3, 3, False, "g2b"),
    ("g5", 2, 4, True, None),
)


def _v22_body(zs, emb: _Emb, preset: Preset):
    """Head + nine GConv units with SLE gates + tanh conv k1: ``[2B,1,T0,out]``."""
    c, eps = preset.gan.base_channels, MOD_EPS["v22"]
    g = _head(zs, emb, 5, 7 * c, eps, ("head_d", "head_r", "head_ai"))
    outs = {}
    for name, mult, kernel, up, src in _V22_UNITS:
        gate = None if src is None else sle_gate(outs[src], mult * c, f"{name}_se")
        t = g.shape[2] * (2 if up else 1)
        g = outs[name] = gconv(g, mult * c, kernel, 2 if up else 1, emb(t), eps, f"{name}_",
                               transposed=up, gate=gate)
    return _conv(preset.stereo_latent_dim, 1, name="out_c", activation="tanh")(g)


def build_generator(preset: Preset) -> keras.Model:
    """Generator ``[B, latlen, coordinate_channels] -> [B, 1, latlen, stereo_latent_dim]`` (float32).

    ``latlen/2`` must be a power of two of at least 64 (the head needs two coarsest-level steps).
    """
    latlen = preset.gan.latlen
    n_up = 4 if (preset.ae.variant == "v44" and preset.gan.small) else 5
    t0 = latlen // 2
    if 2 * t0 != latlen or _log2(t0, "latlen/2") < n_up + 1:
        raise ValueError(f"latlen={latlen}: latlen/2 must be a power of two >= {2 ** (n_up + 1)}")
    inp = keras.Input((latlen, coordinate_channels(preset)), name="coordinates")
    z0 = fold(ops.expand_dims(inp, 1), 2)
    zs = _pyramid(z0, n_up + 1)
    body = _v44_body if preset.ae.variant == "v44" else _v22_body
    out = unfold(body(zs, _Emb(zs), preset), 2)
    return keras.Model(inp, ops.cast(out, "float32"), name="generator")


def generate_halves(generator: keras.Model, coords, training: bool = True):
    """Latents of a coordinate sequence of any whole number of half-windows, made by `generator`.

    `coords` ``[B, H * latlen/2, Cz]`` -> ``[B, 1, H * latlen/2, stereo_latent_dim]``, with ``B * H``
    even. The generator makes its two half-windows independently, so the sequence is cut into its
    ``B * H`` halves and these are paired into generator windows in any order: half ``h`` of the
    output is the half the generator makes from the coordinates of half ``h``, as when a window
    holding it is generated (up to the injected noise, drawn per generator row).
    """
    half = generator.input_shape[1] // 2
    batch, length, width = ops.shape(coords)[0], coords.shape[1], coords.shape[2]
    if length % half:
        raise ValueError(f"generate_halves: {length} coordinates are not whole half-windows of {half}")
    windows = ops.reshape(coords, (-1, 2 * half, width))  # consecutive halves paired
    out = generator(windows, training=training)
    return ops.reshape(out, (batch, 1, length, out.shape[-1]))


# ---------------------------------------------------------------------------------------------
# Critic


def _v44_critic_features(x, preset: Preset):
    """1c (k4 s2, 3C) -> ResBlockD 4C..7C (+ 7C with first conv k1 unless small) -> 7c (k3): features."""
    c = preset.gan.base_channels
    x = L.LeakyReLU(0.2)(_conv(3 * c, 4, 2, name="1c")(x))
    for n, mult in enumerate((4, 5, 6, 7), start=2):
        x = res_block_d(x, mult * c, 4, name=str(n))
    if not preset.gan.small:
        x = res_block_d(x, 7 * c, 4, name="6", first_kernel=1)
    return L.LeakyReLU(0.2)(_conv(7 * c, 3, name="7c")(x))


def _v22_critic_features(x, preset: Preset):
    """Frozen 1x1 projection (+ condition) -> 1c (k3 s2, 3C) -> ResBlockD 4C..7C, 8C (first conv k1)."""
    c, stereo = preset.gan.base_channels, preset.stereo_latent_dim
    cond = condition_channels(preset)
    h = _conv(2 * stereo, 1, name="proj", use_bias=False, trainable=False)(x[..., :stereo] if cond else x)
    if cond:
        h = ops.concatenate([h, x[..., stereo:]], axis=-1)
    h = L.LeakyReLU(0.2)(_conv(3 * c, 3, 2, name="1c")(h))
    for n, mult in enumerate((4, 5, 6, 7), start=2):
        h = res_block_d(h, mult * c, 3, name=str(n))
    return res_block_d(h, 8 * c, 3, name="6", first_kernel=1)


def build_critic(preset: Preset) -> keras.Model:
    """Critic ``[B, 1, latlen, stereo_latent_dim (+1)] -> logit [B, 1]`` (float32).

    When `critic_returns_features`, the outputs are ``[logit, features]`` with features the last
    feature map ``[B, 1, latlen/64 (small: /32), F]`` (the one flattened into the logit).
    """
    inp = keras.Input((1, preset.gan.latlen, preset.stereo_latent_dim + condition_channels(preset)),
                      name="latents")
    body = _v44_critic_features if preset.ae.variant == "v44" else _v22_critic_features
    feats = body(inp, preset)
    logit = L.Dense(1, kernel_initializer=INIT, name="7d" if preset.ae.variant == "v44" else "d")(
        L.Flatten()(feats))
    logit = ops.cast(logit, "float32")
    outputs = [logit, ops.cast(feats, "float32")] if critic_returns_features(preset) else logit
    return keras.Model(inp, outputs, name="critic")


def build_critic_reconstruction(preset: Preset, feature_shape: tuple) -> keras.Model:
    """Auxiliary decoder ``features [B, 1, t, F] -> [B, 1, latlen, stereo_latent_dim]`` (tanh, float32).

    Transposed convs k4 s2 + LReLU with widths 4C, 3.5C, 3C, 2.5C, 2C, 1.5C (one per doubling; the
    reference v22 has six: 512 ... 192), then Conv1x1 + tanh. `feature_shape` = the critic's
    feature output shape without batch, ``(1, t, F)``.
    """
    c, latlen = preset.gan.base_channels, preset.gan.latlen
    n = _log2(latlen // feature_shape[1], "latlen / critic feature length")
    inp = keras.Input(tuple(feature_shape), name="critic_features")
    x = inp
    for i in range(n):
        width = (8 - i) * c // 2 if i < 6 else c // 2
        x = L.LeakyReLU(0.2)(_conv(width, 4, 2, transposed=True, name=f"rec{i}")(x))
    x = _conv(preset.stereo_latent_dim, 1, name="rec_out", activation="tanh")(x)
    return keras.Model(inp, ops.cast(x, "float32"), name="critic_reconstruction")


REGRESSOR_LAYERS, REGRESSOR_KERNEL = 4, 5  # receptive field 17 latents (~3 s at 5.4 latents/s)


def build_condition_regressor(preset: Preset) -> keras.Model:
    """Auxiliary condition regressor ``latents [B, 1, latlen, stereo_latent_dim] -> values [B, latlen]``.

    Four "same" convs (k5, 2C wide, LReLU) and a 1x1 conv with a sigmoid: one normalised condition
    value in (0, 1) per latent frame, estimated from the latents alone (it never sees the condition
    channels).
    """
    c = preset.gan.base_channels
    inp = keras.Input((1, preset.gan.latlen, preset.stereo_latent_dim), name="latents")
    x = inp
    for i in range(REGRESSOR_LAYERS):
        x = L.LeakyReLU(0.2)(_conv(2 * c, REGRESSOR_KERNEL, name=f"reg{i}")(x))
    x = _conv(1, 1, name="reg_out", activation="sigmoid")(x)
    return keras.Model(inp, ops.cast(x[:, 0, :, 0], "float32"), name="condition_regressor")


JOIN_SPAN = 16  # latents the join critic sees (about 3 s at 22.05 kHz), centred on a join


def join_span(x):
    """The `JOIN_SPAN` latents at the centre of windows ``[B, 1, T, C]`` (or curves ``[B, T, K]``):
    of a generated window, around the join of its two half-windows."""
    axis = 2 if len(x.shape) == 4 else 1
    start = x.shape[axis] // 2 - JOIN_SPAN // 2
    return x[:, :, start:start + JOIN_SPAN] if axis == 2 else x[:, start:start + JOIN_SPAN]


def local_span(x, starts):
    """`JOIN_SPAN` latents from ``starts[b]`` on of each window ``[B, 1, T, C]`` (or curve
    ``[B, T, K]``); `starts` ``[B]`` int32 in ``[0, T - JOIN_SPAN]``."""
    squeeze = len(x.shape) == 4
    rows = x[:, 0] if squeeze else x  # [B, T, C]
    batch, length = ops.shape(rows)[0], rows.shape[1]
    first = ops.cast(starts, "int32") + ops.arange(batch, dtype="int32") * length  # in [B*T]
    index = first[:, None] + ops.arange(JOIN_SPAN, dtype="int32")[None]  # [B, JOIN_SPAN]
    span = ops.take(ops.reshape(rows, (-1, rows.shape[-1])), index, axis=0)
    return span[:, None] if squeeze else span


def build_join_critic(preset: Preset, name: str = "join_critic") -> keras.Model:
    """Local join critic ``[B, 1, JOIN_SPAN, stereo_latent_dim (+ condition channels)] -> logit
    [B, 1]`` (float32): three convs (k3, 2C wide, LReLU; the middle one stride 2), mean over time,
    Dense. It sees only a few seconds, so what it can learn is local: how the latents of real music
    move from one step to the next, which a join between independent half-windows must imitate.
    """
    c = preset.gan.base_channels
    inp = keras.Input((1, JOIN_SPAN, preset.stereo_latent_dim + condition_channels(preset)),
                      name="latents")
    x = inp
    for i, stride in enumerate((1, 2, 1)):
        x = L.LeakyReLU(0.2)(_conv(2 * c, 3, stride, name=f"join{i}")(x))
    logit = L.Dense(1, kernel_initializer=INIT, name="join_out")(ops.mean(x, axis=(1, 2)))
    return keras.Model(inp, ops.cast(logit, "float32"), name=name)


def uses_join_critic(preset: Preset) -> bool:
    """Whether GAN training has the join critic (weight > 0)."""
    return preset.gan.join_critic_weight > 0


def uses_local_critic(preset: Preset) -> bool:
    """Whether GAN training has the local critic (`build_join_critic` on random spans, weight > 0)."""
    return preset.gan.local_critic_weight > 0


def uses_condition_regressor(preset: Preset) -> bool:
    """Whether GAN training has the auxiliary condition regressor (conditioned, weight > 0)."""
    return preset.gan.cond != "none" and preset.gan.condition_loss_weight > 0


def build_gan(preset: Preset) -> tuple[keras.Model, keras.Model, keras.Model | None]:
    """``(generator, critic, reconstruction head or None)``; the head only with critic_reconstruction."""
    gen, critic = build_generator(preset), build_critic(preset)
    rec = None
    if preset.gan.critic_reconstruction:
        rec = build_critic_reconstruction(preset, tuple(critic.outputs[1].shape[1:]))
    return gen, critic, rec


def build_networks(preset: Preset) -> dict:
    """Fresh GAN training networks of `preset` by name: generator, critic, gen_ema, and
    critic_rec / cond_regressor / join_critic / local_critic where the preset has them (built in
    this order, so a seeded build gives the same weights)."""
    generator, critic, critic_rec = build_gan(preset)
    models = {"generator": generator, "critic": critic, "gen_ema": build_generator(preset),
              "critic_rec": critic_rec,
              "cond_regressor": build_condition_regressor(preset)
              if uses_condition_regressor(preset) else None,
              "join_critic": build_join_critic(preset) if uses_join_critic(preset) else None,
              "local_critic": build_join_critic(preset, "local_critic")
              if uses_local_critic(preset) else None}
    return {k: m for k, m in models.items() if m is not None}
