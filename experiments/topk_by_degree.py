"""Where two models' test hits come from: per-user Recall@20 by the user's number of training
interactions, test-pair hit rate @20 by the item's, and how many distinct items the top-20 lists
hold. Reads the test users' top-50 CSVs that `mmrec-ld4mrec run --save DIR` writes.

    python experiments/topk_by_degree.py D/tiktok/tiktok.inter LD4MRec=DIR1 SimGCL=DIR2
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

USER_BINS, USER_LABELS = [0, 1, 2, 3, 299, 10**9], ["1", "2", "3", "4-299", "300+"]
ITEM_BINS, ITEM_LABELS = [-1, 0, 2, 5, 10, 25, 10**9], ["0", "1-2", "3-5", "6-10", "11-25", "26+"]
POPULAR = 26  # training interactions from which an item counts as popular here


def top20(folder: str) -> dict[int, set[int]]:
    files = sorted(Path(folder).glob("*top50*.csv"))
    if not files:
        sys.exit(f"{folder}: no *top50*.csv (run with --save {folder})")
    frame = pd.read_csv(files[-1], sep="\t").set_index("id")
    return {int(u): set(row[:20]) for u, row in zip(frame.index, frame.values)}


def main(inter_file: str, named: list[str]) -> None:
    inter = pd.read_csv(inter_file, sep="\t")
    train, test = inter[inter.x_label == 0], inter[inter.x_label == 2]
    user_degree, item_degree = train.groupby("userID").size(), train.groupby("itemID").size()
    tops = {name: top20(folder) for name, folder in (arg.split("=", 1) for arg in named)}
    truth = test[test.userID.isin(user_degree.index)].groupby("userID").itemID.apply(set)

    users = pd.DataFrame({"degree": user_degree[truth.index].values}, index=truth.index)
    for name, top in tops.items():
        users[name] = [len(items & top.get(u, set())) / min(len(items), 20) for u, items in truth.items()]
    users["users"] = 1
    users["bucket"] = pd.cut(users.degree, USER_BINS, labels=USER_LABELS)
    table = users.groupby("bucket", observed=True).agg({**{n: "mean" for n in tops}, "users": "sum"})
    print("per-user Recall@20 by the user's training interactions\n" + table.round(4).to_string())
    print("all users: " + ", ".join(f"{n} {users[n].mean():.4f}" for n in tops) + "\n")

    pairs = test[test.userID.isin(user_degree.index)].copy()
    pairs["degree"] = pairs.itemID.map(item_degree).fillna(0).astype(int)
    for name, top in tops.items():
        pairs[name] = [i in top.get(u, set()) for u, i in zip(pairs.userID, pairs.itemID)]
    pairs["pairs"] = 1
    pairs["bucket"] = pd.cut(pairs.degree, ITEM_BINS, labels=ITEM_LABELS)
    table = pairs.groupby("bucket", observed=True).agg({**{n: "mean" for n in tops}, "pairs": "sum"})
    print("test-pair hit rate @20 by the item's training interactions\n" + table.round(4).to_string() + "\n")

    popular = set(item_degree[item_degree >= POPULAR].index)
    print(f"top-20 lists of the test users ({len(popular)} items have {POPULAR}+ training interactions)")
    for name, top in tops.items():
        slots = [i for u in truth.index for i in top.get(u, ())]
        print(f"  {name}: {len(set(slots))} distinct items, {sum(i in popular for i in slots) / len(slots):.1%} "
              f"of the slots on popular items")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
