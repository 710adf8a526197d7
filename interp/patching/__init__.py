"""Activation patching and attribution patching, on any prompt pair, on the frozen-prefix engine.

Context. Activation patching (Meng et al.'s causal tracing; Wang et al.'s IOI circuit; TransformerLens's
``transformer_lens.patching``) asks *which activations carry the information that makes the model answer
one way rather than another*. Two prompts differ in one detail: the **clean** prompt gets the right answer
("When Mary and John went to the store, John gave a drink to" -> " Mary"), the **corrupted** prompt does not
(the same sentence with the names swapped at one place). A **metric** reads the final-position logits
(the logit difference between the answer and the wrong answer, the answer's probability, or any
callable). We run the corrupted prompt, replace *one* activation (one head's output at one position, one
layer's MLP output, the residual stream at one layer and position, ...) by its value in the clean run, and
measure how much of the clean metric comes back:

    normalized = (value - corrupted) / (clean - corrupted)      1: the patch restores everything, 0: nothing

That is **denoising** (clean into corrupted: "is this activation *sufficient* to restore the answer?").
**Noising** patches the corrupted activation into the clean run ("is it *necessary*?"); the same formula
then reads 1 for "nothing lost" and 0 for "everything lost".

Components (``component=``), with TransformerLens's hook names at layer ``l``:

=============  =======================================  ================================================
``z``          ``blocks.{l}.attn.hook_z``                one head's output (before ``W_O``; patching it
               (aliases ``heads``, ``result``)           equals patching its ``result`` ``z @ W_O[h]``)
``q k v``      ``blocks.{l}.attn.hook_{q,k,v}``          per query head (``k``/``v``: per key-value head)
``pattern``    ``blocks.{l}.attn.hook_pattern``          one head's attention row at the patched position
``attn_out``   ``blocks.{l}.hook_attn_out``              the attention layer's output
``mlp_out``    ``blocks.{l}.hook_mlp_out``               the MLP's output
``resid_pre``  ``blocks.{l}.hook_resid_pre``             the residual stream into / between / out of a
``resid_mid``  ``blocks.{l}.hook_resid_mid``             block
``resid_post`` ``blocks.{l}.hook_resid_post``
=============  =======================================  ================================================

Positions (``position=``): ``"final"`` (the final token; the fast path), an index (a column of the
corrupted prompt's tokens, counted from 0; negative counts from the end), ``"all"`` (every position, each
patched on its own: a position axis) or ``"all_at_once"`` (a head or layer at every position together,
TransformerLens's ``*_all_pos``).

Why it is fast. A patch at position ``p`` cannot change positions ``< p`` (causal attention), so their
keys and values are those of the unpatched run at every layer; and a patch at layer ``l`` cannot change
layers ``< l`` at any position. So we run the unpatched prompt once with a key-value cache
(`interp.engine.FrozenPrefix`), and each patch (l, p) re-runs only positions ``p..T-1`` through blocks
``l..L-1`` (`FrozenPrefix.run_from`), many patches as rows of one batch. At the final position that is a
one-token run over a frozen prefix stored once per prompt (shared-prefix attention): all 270 heads of
SmolLM2 cost about what a few full forwards do. The hooks fire exactly as in a full forward (the same
hook points, the same shapes at the re-run positions), and the tests hold every result equal to
``transformer_lens.patching.get_act_patch_*`` (one full forward per patch) on many architecture families,
including left-padded batches of pairs of unequal length (a batch's positions are the columns of the
left-padded batch: the final tokens line up).

Attribution patching (Nanda 2023; Syed et al. 2023) is the first-order Taylor estimate of every exact
patch at once: ``value ≈ base + ∂metric/∂act · (act_source - act_base)``, summed over the activation's
features, from one forward and one backward pass of the base prompt. It is exact when the model is
linear between the two activations, and can be far off where it is not (attention saturating, a norm
rescaling). `agreement` compares the two answers (Spearman / Kendall rank correlation, top-k overlap of
the largest effects, the components where they disagree most) so you can see whether the estimate can be
trusted on *your* model and prompts before using it where the exact answer is too expensive.

    import interp.patching as P
    pairs = P.make_pairs(model, clean="When Mary and John went to the store, John gave a drink to",
                         corrupted="When Mary and John went to the store, Mary gave a drink to",
                         answer=" Mary", wrong=" John")
    heads = P.patch(model, pairs, component="z")                  # every head at the final token
    heads.to_frame(); P.plot_patching(heads)
    resid = P.patch_resid_pre(model, pairs)                       # every layer x position
    approx = P.patch(model, pairs, component="z", method="attribution")
    P.agreement(heads, approx)                                    # Spearman, top-k overlap, worst heads

As in ``transformer_lens.patching``, one generic function (`patch`) does everything and the named
functions (`patch_heads`, `patch_resid_pre`, ...) are thin ``functools.partial`` specialisations.
"""

from interp.patching.core import (
    ALIASES,
    COMPONENTS,
    Agreement,
    AnswerProb,
    Component,
    LogitDiff,
    PatchingError,
    PatchingResult,
    PromptPairs,
    agreement,
    attribution_patch,
    get_component,
    make_pairs,
    patch,
    patch_attn_out,
    patch_heads,
    patch_heads_all_pos,
    patch_heads_by_pos,
    patch_mlp_out,
    patch_resid_mid,
    patch_resid_post,
    patch_resid_pre,
    plot_patching,
    problem_pairs,
)
from interp.patching.prompt_sets import factual_pairs, ioi_pairs

__all__ = [
    "ALIASES",
    "COMPONENTS",
    "Agreement",
    "AnswerProb",
    "Component",
    "LogitDiff",
    "PatchingError",
    "PatchingResult",
    "PromptPairs",
    "agreement",
    "attribution_patch",
    "factual_pairs",
    "get_component",
    "ioi_pairs",
    "make_pairs",
    "patch",
    "patch_attn_out",
    "patch_heads",
    "patch_heads_all_pos",
    "patch_heads_by_pos",
    "patch_mlp_out",
    "patch_resid_mid",
    "patch_resid_post",
    "patch_resid_pre",
    "plot_patching",
    "problem_pairs",
]
