"""One set of shared weights for every sub-network of a search space: slices of the largest.

The supernet does not re-implement any model. A candidate's sub-network *is* the ordinary model of
its spec (``spec.plugin.build``, made once on the meta device, so it holds no memory), called with
``torch.func.functional_call`` on parameters that are leading slices of the supernet's tensors:
``weight[:rows, :cols]`` (as whittle slices litgpt's Linear, Embedding and norms). Its forward is
therefore the model's own, op for op, and gradients flow back into the shared tensors. A fused
projection (``qkv``: query, key and value rows one after another) is sliced part by part, as the
module declares with ``fused_rows``.

The shared tensors (``Supernet.store``): one per parameter name any candidate of the space has,
each as large in every dimension as the largest candidate's (found on the meta device over the
space's largest and smallest candidates and a seeded sample), initialised from a real build of the
largest candidate (names it lacks: from the first sampled candidate that has them at full size,
else GPT-2's initialisation). Any backbone whose genes are sizes is covered (``sliceable``): gpt2,
opt, transformer_xl, merino, par and llama. A candidate outside what the store covers is refused
with the parameter named. Derivations: docs/proxies.md ("supernet_loss").
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch.func import functional_call

from paretolm.core.arch import ArchSpec
from paretolm.core.backbones import get as get_backbone
from paretolm.core.spaces import SearchSpace

PROBE = 256  # sampled candidates (besides the two extremes) whose parameters size the store


def extreme(space: SearchSpace, largest: bool) -> ArchSpec:
    """The largest (or smallest) candidate of ``space``: every gene at its largest (smallest)
    choice, head counts and inner widths then restricted to those the width allows."""
    pick = max if largest else min
    genome = {key: pick(gene.choices) for key, gene in space.keys()}
    width = genome.get("d_model", space.fixed.get("d_model"))
    ratio = space.constraints.get("d_inner_min_ratio") or 0
    for key, gene in space.keys():
        if gene.name == "n_head" and isinstance(width, int):
            ok = [h for h in gene.choices if width % h == 0]
        elif gene.name == "d_inner" and isinstance(width, int):
            ok = [f for f in gene.choices if f >= ratio * width]
        else:
            continue
        if ok:
            genome[key] = pick(ok)
    return space.decode(genome)


def meta_model(spec: ArchSpec) -> nn.Module:
    """``spec``'s model on the meta device: its parameter names and shapes, no memory."""
    with torch.device("meta"):
        return spec.plugin.build(spec).eval()


def fused_parts(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Parameter name -> the sizes of the parts its rows are made of (``fused_rows`` of the
    module that owns the fused Linear), for every fused parameter of ``model``."""
    out: dict[str, tuple[int, ...]] = {}
    for prefix, module in model.named_modules():
        for child, parts in getattr(module, "fused_rows", {}).items():
            for kind in ("weight", "bias"):
                name = f"{prefix}.{child}.{kind}" if prefix else f"{child}.{kind}"
                out[name] = tuple(int(p) for p in parts)
    return out


def parameter_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


class Supernet(nn.Module):
    """The shared weights of every candidate of ``space`` with the data's vocabulary and window
    length (see the module docstring). ``layout`` (name -> shape, name -> fused parts) is given
    when a trained supernet is read back; otherwise it is found from the space."""

    def __init__(
        self,
        space: SearchSpace,
        vocab_size: int,
        max_seq_len: int,
        seed: int = 0,
        layout: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        if not get_backbone(space.backbone).sliceable:
            raise ValueError(
                f"backbone: {space.backbone} models cannot be sliced into sub-networks (space {space.name!r})"
            )
        self.space, self.vocab_size, self.max_seq_len = space, int(vocab_size), int(max_seq_len)
        self._models: OrderedDict[str, nn.Module] = OrderedDict()  # meta-device models, by arch_id
        largest = self.fit(extreme(space, True), check=False)
        if layout is None:
            probes = [largest, self.fit(extreme(space, False), check=False)]
            rng = random.Random(seed)
            probes += [self.fit(space.sample_genome(rng)[1], check=False) for _ in range(PROBE)]
            shapes, parts, sources = self._layout(probes)
        else:
            shapes = {k: tuple(v) for k, v in layout["shapes"].items()}
            parts = {k: tuple(v) for k, v in layout["parts"].items()}
            sources = {}
        self.shapes, self.parts = shapes, parts
        self.store = nn.ParameterDict({_key(n): nn.Parameter(torch.empty(s)) for n, s in shapes.items()})
        if layout is None:
            self._initialise(sources, seed)
        self.largest = largest

    # -- what the store holds ---------------------------------------------------------------------
    def _layout(self, probes: Sequence[ArchSpec]) -> tuple[dict, dict, dict]:
        """Name -> the store's shape, name -> the sizes of a fused parameter's parts, and name ->
        the first probe (the largest first) that has the parameter at the store's full size."""
        shapes: dict[str, tuple[int, ...]] = {}
        parts: dict[str, tuple[int, ...]] = {}
        seen = []  # each probe's (parameter shapes, fused parts), read once
        for spec in probes:
            model = meta_model(spec)
            seen.append((parameter_shapes(model), fused_parts(model)))
        for own, fused in seen:
            for name, shape in own.items():
                old = shapes.get(name)
                if old is not None and len(old) != len(shape):
                    raise ValueError(f"{name}: {len(shape)} dimensions in one candidate, {len(old)} in another")
                shapes[name] = shape if old is None else tuple(max(a, b) for a, b in zip(old, shape, strict=True))
                if name in fused:  # a fused dimension holds each part at its largest
                    if name in parts and len(parts[name]) != len(fused[name]):
                        raise ValueError(
                            f"{name}: fused from {len(fused[name])} parts in one candidate, "
                            f"{len(parts[name])} in another"
                        )
                    parts[name] = tuple(
                        max(a, b) for a, b in zip(parts.get(name, fused[name]), fused[name], strict=True)
                    )
        for name, sizes in parts.items():
            shapes[name] = (sum(sizes), *shapes[name][1:])
        sources: dict[str, ArchSpec] = {}
        for spec, (own, fused) in zip(probes, seen, strict=True):
            for name, shape in own.items():
                if name not in sources and shape == shapes[name] and fused.get(name) == parts.get(name):
                    sources[name] = spec
        return shapes, parts, sources

    @torch.no_grad()
    def _initialise(self, sources: Mapping[str, ArchSpec], seed: int) -> None:
        """Each tensor from a real build (seeded) of the candidate that holds it at full size, else
        GPT-2's scheme: N(0, 0.02) matrices, zero biases, unit norm weights."""
        built: dict[str, dict[str, torch.Tensor]] = {}
        for name in self.shapes:
            target, spec = self.store[_key(name)], sources.get(name)
            if spec is not None:
                if spec.arch_id not in built:
                    torch.manual_seed(seed)
                    built[spec.arch_id] = dict(spec.plugin.build(spec).named_parameters())
                target.copy_(built[spec.arch_id][name])
            elif target.dim() >= 2:
                target.normal_(0.0, 0.02)
            else:
                target.fill_(0.0 if name.endswith("bias") else 1.0)

    def layout(self) -> dict[str, Any]:
        """The store's shapes and fused parts (recorded with the trained weights)."""
        return {
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "parts": {k: list(v) for k, v in self.parts.items()},
        }

    # -- candidates -------------------------------------------------------------------------------
    def fit(self, spec: ArchSpec, check: bool = True) -> ArchSpec:
        """``spec`` with the supernet's vocabulary and window length (neither is searched), checked
        to be covered by the store; ValueError naming the parameter otherwise."""
        if spec.backbone != self.space.backbone:
            raise ValueError(
                f"backbone: this supernet is of a {self.space.backbone} space "
                f"({self.space.name!r}); the candidate is {spec.backbone!r}"
            )
        spec = spec.plugin.retarget(spec, self.vocab_size, self.max_seq_len)
        if check:
            model = self._model(spec)
            fused = fused_parts(model)
            for name, shape in parameter_shapes(model).items():
                if name not in self.shapes:
                    raise ValueError(
                        f"{name}: the candidate has a parameter the supernet of space {self.space.name!r} lacks"
                    )
                # a fused parameter's parts each within the store's part, its other dimensions within
                have = (*fused[name], *shape[1:]) if name in fused else shape
                room = (*self.parts[name], *self.shapes[name][1:]) if name in fused else self.shapes[name]
                if len(have) != len(room) or any(a > b for a, b in zip(have, room, strict=True)):
                    raise ValueError(
                        f"{name}: {list(shape)} is outside the supernet's {list(self.shapes[name])} "
                        f"(space {self.space.name!r})"
                    )
        return spec

    def _model(self, spec: ArchSpec) -> nn.Module:
        """The meta-device model of ``spec``, cached (the most recent 64)."""
        model = self._models.get(spec.arch_id)
        if model is None:
            model = self._models[spec.arch_id] = meta_model(spec)
            if len(self._models) > 64:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(spec.arch_id)
        return model

    def weights(self, spec: ArchSpec) -> dict[str, torch.Tensor]:
        """``spec``'s parameters as slices of the store (views, except fused ones: concatenated
        slices); ``spec`` must be fitted."""
        model = self._model(spec)
        fused = fused_parts(model)
        out = {}
        for name, shape in parameter_shapes(model).items():
            full = self.store[_key(name)]
            if name in fused:
                pieces, start = [], 0
                for size, room in zip(fused[name], self.parts[name], strict=True):
                    pieces.append(full[start : start + size][tuple(slice(0, n) for n in (size, *shape[1:]))])
                    start += room
                out[name] = torch.cat(pieces, dim=0)
            else:
                out[name] = full[tuple(slice(0, n) for n in shape)]
        return out

    def forward(self, input_ids: torch.Tensor, spec: ArchSpec, labels: torch.Tensor | None = None) -> Any:
        """``spec``'s model output (``LMOutput``) on its slices of the shared weights."""
        spec = self.fit(spec)
        kwargs = {} if labels is None else {"labels": labels}
        return functional_call(self._model(spec), self.weights(spec), (input_ids,), kwargs, strict=True)

    def subnet(self, spec: ArchSpec) -> nn.Module:
        """A standalone model of ``spec`` (fitted) holding a copy of its slices (eval mode)."""
        spec = self.fit(spec)
        model = spec.plugin.build(spec)
        with torch.no_grad():
            model.load_state_dict({k: v.detach().clone() for k, v in self.weights(spec).items()})
        return model.eval()


def _key(name: str) -> str:
    """A parameter name as a ``ParameterDict`` key (which may not hold dots)."""
    return name.replace(".", "__")


__all__ = ["PROBE", "Supernet", "extreme", "fused_parts", "meta_model"]
