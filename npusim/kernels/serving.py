"""One serving scheduler iteration's integer bookkeeping, over the running requests.

The serving simulation (:mod:`npusim.workloads.serving`) keeps its running requests in parallel
int64 arrays in admission order: tokens in the KV cache (``comp``), tokens generated (``gen``),
KV blocks held (``blk``) and the prompt prefix ever computed (``pdone``). Every full scheduler
step does the same two passes over them, which on a few hundred requests cost more as dozens of
small numpy calls than as one loop:

* :func:`plan`: how many tokens each request computes this step, running requests first in
  order, each taking ``min(tokens it has left, budget left)``, where the budget left is what
  the requests before it *asked for* (vLLM V1's ``token_budget -= num_new_tokens`` over
  ``min(remaining, budget)``: a request that was cut short leaves nothing), and how many new
  KV blocks each then needs.
* :func:`advance`: the state after the step: tokens cached, tokens generated (a request samples
  a token when its cache catches up with what it knows), blocks held, prompt tokens computed for
  the first time, and which requests decoded, prefilled, sampled their first token or finished.

A request holds ``ceil(tokens / block)`` blocks, at least ``floor`` (its whole life's under the
no-evict policy; 0 otherwise). Both kernels are ``@njit(cache=True)`` on int64 arrays and plain
integers, and each has a pure-Python twin (``*_ref``) written the slow, obvious way; the tests
demand they agree.
"""
from __future__ import annotations

import numpy as np
from numba import njit

DECODE = 1
"""Flag of :func:`advance`: the request decoded (one new token, the one it last sampled)."""
PREFILL = 2
"""Flag: the request computed prompt (or recomputed) tokens."""
SAMPLED = 4
"""Flag: the request sampled a token this step."""
FIRST = 8
"""Flag: that token was its first."""
DONE = 16
"""Flag: it has generated all ``out`` tokens."""


@njit(cache=True)
def plan(comp, gen, blk, inp, budget, block, floor):
    """Tokens each running request computes this step and the new blocks each needs.

    Parameters
    ----------
    comp, gen, blk : int64 arrays
        Tokens cached, tokens generated and blocks held, per running request in order.
    inp, budget, block, floor : int
        Prompt tokens of every request, token budget of the step, tokens per KV block and
        blocks a request holds at least.

    Returns
    -------
    n, need : int64 arrays
        Tokens computed and blocks newly needed (``held(comp + n) - blk``) per request.
    need_total, n_total : int
        Their sums.

    Examples
    --------
    >>> import numpy as np
    >>> a = lambda *v: np.array(v, dtype=np.int64)
    >>> n, need, need_total, n_total = plan(a(10, 0), a(1, 0), a(1, 0), 10, 8, 16, 0)
    >>> n.tolist(), need.tolist(), need_total, n_total
    ([1, 7], [0, 1], 1, 8)
    """
    R = comp.shape[0]
    n = np.empty(R, dtype=np.int64)
    need = np.empty(R, dtype=np.int64)
    need_total, n_total = plan_into(comp, gen, blk, inp, budget, block, floor, n, need)
    return n, need, need_total, n_total


@njit(cache=True)
def plan_into(comp, gen, blk, inp, budget, block, floor, n, need):
    """:func:`plan` writing ``n`` and ``need`` into the given arrays (their first
    ``len(comp)`` places); returns ``(need_total, n_total)``."""
    R = comp.shape[0]
    asked = 0
    need_total = 0
    n_total = 0
    for i in range(R):
        rem = inp + gen[i] - comp[i]
        left = budget - asked
        if left < 0:
            left = 0
        take = rem if rem < left else left
        n[i] = take
        asked += rem
        held = (comp[i] + take + block - 1) // block
        if held < floor:
            held = floor
        need[i] = held - blk[i]
        need_total += need[i]
        n_total += take
    return need_total, n_total


@njit(cache=True)
def advance(comp, gen, pdone, n, inp, block, floor, out):
    """The running requests' state after a step that computes ``n`` tokens for each.

    Returns
    -------
    comp, gen, pdone, blk : int64 arrays
        Tokens cached, generated, prompt prefix ever computed, blocks held, after the step.
    flags : int64 array
        Per request, the sum of :data:`DECODE`, :data:`PREFILL`, :data:`SAMPLED`,
        :data:`FIRST` and :data:`DONE` that apply (a request with ``n == 0`` has none).
    counts : int64 array
        ``[prompt tokens computed for the first time, tokens sampled, requests scheduled,
        blocks held, requests decoding, requests that will decode next]`` (the last: one
        token left to compute, the one they sampled).

    Examples
    --------
    >>> import numpy as np
    >>> a = lambda *v: np.array(v, dtype=np.int64)
    >>> c, g, p, b, flags, counts = advance(a(10, 0), a(1, 0), a(10, 0), a(1, 7), 10, 16, 0, 2)
    >>> c.tolist(), g.tolist(), b.tolist(), flags.tolist(), counts.tolist()
    ([11, 7], [2, 0], [1, 1], [21, 2], [7, 1, 2, 2, 1, 1])
    """
    R = comp.shape[0]
    comp2 = np.empty(R, dtype=np.int64)
    gen2 = np.empty(R, dtype=np.int64)
    pdone2 = np.empty(R, dtype=np.int64)
    blk2 = np.empty(R, dtype=np.int64)
    flags = np.zeros(R, dtype=np.int64)
    counts = np.zeros(6, dtype=np.int64)
    advance_into(comp, gen, pdone, n, inp, block, floor, out, comp2, gen2, pdone2, blk2, flags,
                 counts)
    return comp2, gen2, pdone2, blk2, flags, counts


@njit(cache=True)
def advance_into(comp, gen, pdone, n, inp, block, floor, out, comp2, gen2, pdone2, blk2, flags,
                 counts):
    """:func:`advance` writing its arrays into the given ones (their first ``len(comp)``
    places, ``counts`` all six)."""
    R = comp.shape[0]
    counts[:] = 0
    for i in range(R):
        flags[i] = 0
        c, g, ni = comp[i], gen[i], n[i]
        known = inp + g
        hi = c + ni if c + ni < inp else inp
        seen = c if c > pdone[i] else pdone[i]
        if hi > seen:
            counts[0] += hi - seen
        pdone2[i] = pdone[i] if pdone[i] > hi else hi
        c2 = c + ni
        comp2[i] = c2
        held = (c2 + block - 1) // block
        if held < floor:
            held = floor
        blk2[i] = held
        counts[3] += held
        g2 = g
        if ni > 0:
            counts[2] += 1
            if known - c == 1 and g >= 1:
                flags[i] += DECODE
                counts[4] += 1
            else:
                flags[i] += PREFILL
            if c2 == known:
                g2 = g + 1
                counts[1] += 1
                flags[i] += SAMPLED
                if g2 == 1:
                    flags[i] += FIRST
                if g2 >= out:
                    flags[i] += DONE
        gen2[i] = g2
        if inp + g2 - c2 == 1 and g2 >= 1:
            counts[5] += 1


# ----------------------------------------------------------------------------- the twins

def _held_ref(tokens: int, block: int, floor: int) -> int:
    return max(-(-tokens // block), floor)


def plan_ref(comp, gen, blk, inp, budget, block, floor):
    """Pure-Python twin of :func:`plan`: same arguments, same results (lists for arrays)."""
    n, need = [], []
    asked = 0
    for c, g, b in zip(list(comp), list(gen), list(blk)):
        remaining = inp + g - c
        take = min(remaining, max(budget - asked, 0))
        asked += remaining
        n.append(take)
        need.append(_held_ref(c + take, block, floor) - b)
    return n, need, sum(need), sum(n)


def advance_ref(comp, gen, pdone, n, inp, block, floor, out):
    """Pure-Python twin of :func:`advance`: same arguments, same results (lists for arrays)."""
    comp2, gen2, pdone2, blk2, flags = [], [], [], [], []
    first_time = sampled = scheduled = blocks = decoding = ready = 0
    for c, g, p, ni in zip(list(comp), list(gen), list(pdone), list(n)):
        known = inp + g
        hi = min(c + ni, inp)
        first_time += max(hi - max(c, p), 0)
        pdone2.append(max(p, hi))
        comp2.append(c + ni)
        blk2.append(_held_ref(c + ni, block, floor))
        blocks += blk2[-1]
        f = 0
        new_gen = g
        if ni > 0:
            scheduled += 1
            if known - c == 1 and g >= 1:
                f += DECODE
                decoding += 1
            else:
                f += PREFILL
            if c + ni == known:
                new_gen = g + 1
                sampled += 1
                f += SAMPLED + (FIRST if new_gen == 1 else 0) + (DONE if new_gen >= out else 0)
        gen2.append(new_gen)
        flags.append(f)
        ready += inp + new_gen - (c + ni) == 1 and new_gen >= 1
    return comp2, gen2, pdone2, blk2, flags, [first_time, sampled, scheduled, blocks, decoding,
                                              ready]


__all__ = ["DECODE", "DONE", "FIRST", "PREFILL", "SAMPLED", "advance", "advance_into",
           "advance_ref", "plan", "plan_into", "plan_ref"]
