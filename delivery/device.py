"""Delivery to a device: the blocks each user received in a slot, as bytes a device can rebuild.

For slot t and user k, `DeviceWriter.write_slot` makes `out/slot-<t>/user-<k>/`, a received-blocks
directory that `pbkit --store S assemble MODEL --from-blocks DIR` accepts (files named by the
store's block ids: copies of the store's objects, reflinks where the file system offers them,
never hard links, so writing into a received block cannot corrupt the store), and `manifest.json`:

    {"model": NAME, "delay_s": X,
     "blocks": [{"id": PB id, "bytes": n, "arrival_s": t, "store_blocks": [block ids]}, ...]}

with the library PBs in arrival order (`SlotResult.arrivals`). A library PB is a group of the
store's blocks (a layer, a fixed-size run, the headers and small files); the library records the
member blocks of each PB (`PBEntry.members`, written by `library export`), and a store block is
written once every PB holding a part of it has arrived. The library must be exported from the
store S (`pbkit --store S library export ...`); a planned or synthetic library has no bytes.

Each user directory is built in a temporary directory and renamed into place, so a reader never
sees a half-written one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbkit.common.fs import atomic_dir
from pbkit.errors import PbkitError
from pbkit.library import PBEntry, PBLibrary
from pbkit.library.grouping import parse_member
from pbkit.store.objects import is_id


class DeliveryError(PbkitError, ValueError):
    """Received blocks cannot be written: the library is not from this store, or no arrivals."""


def store_blocks_of(pb: PBEntry) -> list[str]:
    """The store block ids a library PB holds (in order, each once). A PB without recorded
    members is a single store block (a tensor-granularity PB's id is the tensor's block id)."""
    if not pb.members:
        return [pb.id]
    return list(dict.fromkeys(parse_member(m)[0] for m in pb.members))


@dataclass(frozen=True)
class UserDelivery:
    slot: int
    user: int
    model: str
    delay_s: float
    path: Path
    blocks: int  # store blocks written (each a copy of its own, never a hard link to the store)


class DeviceWriter:
    """Writes what every user received into `out_dir`, slot by slot.

    Raises DeliveryError at construction when `out_dir` cannot be created or a PB of `library`
    names a block that is not in `store` (the library was not exported from this store), and in
    `write_slot` when the simulator's result carries no arrivals.
    """

    def __init__(self, store: Any, library: PBLibrary, out_dir: str | os.PathLike[str]):
        self.store = store
        self.library = library
        self.out = Path(out_dir)
        self.blocks = [store_blocks_of(pb) for pb in library.pbs]
        missing = [
            (pb, b)
            for pb, blocks in zip(library.pbs, self.blocks)
            for b in blocks
            if not is_id(b) or not store.objects.exists(b)
        ]
        if missing:
            pb, block = missing[0]
            raise DeliveryError(
                f"{store.root}: library PB {pb.id[:16]} ({pb.label or 'no label'}) holds block "
                f"{block[:16]}, which is not in this store ({len(missing)} such blocks); "
                "--deliver-to needs a library exported from this store (pbkit --store S library export)"
            )
        try:  # before any slot is simulated: a file in the way fails now, not after the work
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(f"{self.out}: cannot create the delivery directory ({exc.strerror})") from None
        self.index = library.pb_index()
        # which PBs hold a part of each store block (a fixed-size PB may hold a tensor's slice)
        self.holders: dict[str, list[int]] = {}
        for j, blocks in enumerate(self.blocks):
            for b in blocks:
                self.holders.setdefault(b, []).append(j)

    def write_slot(self, result: Any) -> list[UserDelivery]:
        """Write slot `result.slot`: one directory per user. Returns what was written."""
        if result.arrivals is None:
            raise DeliveryError("the simulator's slot result carries no per-user arrivals")
        slot_dir = self.out / f"slot-{result.slot}"
        slot_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for k, arrivals in enumerate(result.arrivals):
            model = self.library.models[int(result.requests[k])]
            written.append(
                self._write_user(
                    slot_dir, result.slot, k, model.name, float(result.user_delay_s[k]), arrivals, set(model.pbs)
                )
            )
        return written

    def _write_user(
        self,
        slot_dir: Path,
        slot: int,
        k: int,
        model: str,
        delay_s: float,
        arrivals: list[tuple[int, float]],
        model_pbs: set[str],
    ) -> UserDelivery:
        final = slot_dir / f"user-{k}"
        # A rerun into the same directory replaces the slot's old files.
        with atomic_dir(final, overwrite=True, prefix=f".user-{k}.") as tmp:
            received = {int(j) for j, _ in arrivals}
            entries, count = [], 0
            done: set[str] = set()
            for j, t in arrivals:
                pb = self.library.pbs[int(j)]
                entries.append(
                    {"id": pb.id, "bytes": pb.bytes, "arrival_s": float(t), "store_blocks": self.blocks[int(j)]}
                )
                for b in self.blocks[int(j)]:
                    if b in done:
                        continue
                    parts = [h for h in self.holders[b] if self.library.pbs[h].id in model_pbs] or [int(j)]
                    if all(h in received for h in parts):
                        done.add(b)
                        self.store.objects.copy_out(b, tmp / b)
                        count += 1
            manifest = {"model": model, "delay_s": delay_s, "blocks": entries}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return UserDelivery(slot, k, model, delay_s, final, count)


@dataclass(frozen=True)
class Rebuilt:
    model: str
    path: Path
    base: str | None = None  # the adapter's base, rebuilt from the same blocks
    base_path: Path | None = None


def rebuild(store: Any, user_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Rebuilt:
    """The device side: rebuild the model named in `user_dir/manifest.json` from the blocks in
    `user_dir` alone (every block verified against its id), into `out_dir/<model>`; for an
    adapter, also its base into `out_dir/<base>` (the library sends an adapter's base PBs with
    it). Raises DeliveryError on a missing or malformed manifest, and the store's AssemblyError
    when a block is missing or corrupt (nothing is left behind then)."""
    user_dir, out = Path(user_dir), Path(out_dir)
    try:
        model = json.loads((user_dir / "manifest.json").read_text())["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeliveryError(f"{user_dir / 'manifest.json'}: not a delivery manifest ({exc})") from None
    store.assemble(model, out / model, from_blocks=user_dir)
    recipe = store.recipe(model)
    if recipe.kind != "adapter" or recipe.base is None:
        return Rebuilt(model, out / model)
    store.assemble(recipe.base.name, out / recipe.base.name, from_blocks=user_dir)
    return Rebuilt(model, out / model, recipe.base.name, out / recipe.base.name)
