"""Card-level shapes for bench.load.synth: legit sessions and the fraud patterns' signatures.

Every function rewrites some rows of the columns in place (card, timestamp, category)
(never the amounts: the caller draws them once cards are final) so that a card's
transactions, read in time order, have the shape of its story:

    legit sessions   a shopping trip (3-6 payments across shops within 2 h), transit taps
                     (2-5 small fares, some <= 1.00, within 40 min), in-app purchases (2-4
                     micro amounts within 10 min): legit cards burst too, so a count alone is
                     no label
    card testing     `size` micro amounts on one card within `window` seconds
    velocity         `size` ordinary amounts on one card within `window`, each in another
                     merchant category
    account takeover `size` payments within `window` on a card that already has a history,
                     5-20x the card's own typical amount, in the categories fraud favours

Row selection, card choice and times come from the caller's generator, so a seed reproduces
every shape.
"""

from __future__ import annotations

import numpy as np

__all__ = ["place_legit_sessions", "place_clusters", "spread_categories", "place_takeovers",
           "SESSION_SHARE", "TRANSIT_FARES", "IN_APP_PRICES"]

SESSION_SHARE = 0.12     # share of legit rows that belong to a session rather than stand alone
TRANSIT_FARES = np.array([0.75, 0.90, 1.00, 1.50, 2.00, 2.50, 2.75, 3.40])
IN_APP_PRICES = np.array([0.29, 0.49, 0.79, 0.99, 1.99])

# kind: (probability, min size, max size, window s)
_SESSIONS = {
    "shopping": (0.50, 3, 6, 7_200.0),
    "transit": (0.35, 2, 5, 2_400.0),
    "in_app": (0.15, 2, 4, 600.0),
}


def _groups(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """Group ids for n consecutive items in runs of lo..hi (the last run may be shorter)."""
    sizes = rng.integers(lo, hi + 1, n // max(lo, 1) + 1)
    return np.repeat(np.arange(len(sizes)), sizes)[:n]


def _spread(rng, rows, group, t0, window, end) -> np.ndarray:
    """Times for rows of each group: its start plus a uniform offset within the window,
    kept before `end`."""
    t = t0[group] + rng.random(len(rows)) * window
    return np.minimum(t, np.nextafter(end, -np.inf))


def place_legit_sessions(rng, legit_rows, card, ts, category, categories, end
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Turn SESSION_SHARE of the legit rows into sessions on the card of each session's first
    row, starting at that row's time. Returns the transit rows and the in-app rows, whose
    amounts the caller sets (fares and micro amounts)."""
    none = np.zeros(0, np.intp)
    picked = legit_rows[rng.random(len(legit_rows)) < SESSION_SHARE]
    if len(picked) == 0:
        return none, none
    picked = rng.permutation(picked)
    names = list(_SESSIONS)
    p = np.array([_SESSIONS[k][0] for k in names])
    kind = rng.choice(len(names), size=len(picked), p=p)
    cat_index = {name: i for i, name in enumerate(categories)}
    special = {"transit": none, "in_app": none}
    for k, name in enumerate(names):
        rows = picked[kind == k]
        if len(rows) == 0:
            continue
        _, lo, hi, window = _SESSIONS[name]
        group = _groups(rng, len(rows), lo, hi)
        first = rows[np.unique(group, return_index=True)[1]]
        card[rows] = card[first][group]
        ts[rows] = _spread(rng, rows, group, ts[first], window, end)
        if name == "shopping":
            shops = [cat_index[c] for c in ("grocery", "restaurant", "online_retail",
                                            "electronics", "entertainment", "pharmacy")]
            category[rows] = rng.choice(shops, len(rows))
        else:
            category[rows] = cat_index["transit" if name == "transit" else "entertainment"]
            special[name] = rows
    return special["transit"], special["in_app"]



def place_clusters(rng, rows, size, window, card, ts, n_cards, card_offset, start, end) -> None:
    """Put the rows on a few cards: each run of `size` rows shares one card (uniform over the
    population, like a stolen number) and falls within `window` seconds."""
    if len(rows) == 0:
        return
    cluster = np.arange(len(rows)) // max(1, size)
    n_clusters = int(cluster[-1]) + 1
    card[rows] = card_offset + rng.integers(0, n_cards, n_clusters)[cluster]
    first = start + rng.random(n_clusters) * max(0.0, end - start - window)
    ts[rows] = _spread(rng, rows, cluster, first, min(window, end - start), end)


def spread_categories(rng, rows, size, category, n_categories) -> None:
    """Each run of `size` rows visits the categories in a random order of its own."""
    if len(rows) == 0:
        return
    cluster = np.arange(len(rows)) // max(1, size)
    n_clusters = int(cluster[-1]) + 1
    offset = rng.integers(0, n_categories, n_clusters)[cluster]
    step = (np.arange(len(rows)) % max(1, size)) * rng.choice([1, 3, 7, 9], n_clusters)[cluster]
    category[rows] = (offset + step) % n_categories


def place_takeovers(rng, rows, size, window, legit_rows, card, ts, end) -> None:
    """Runs of `size` rows on the card of a random legit row (a card with a history), soon
    after that row's time. Their amounts (5-20x the card's own typical one) are the caller's."""
    if len(rows) == 0:
        return
    cluster = np.arange(len(rows)) // max(1, size)
    n_clusters = int(cluster[-1]) + 1
    if len(legit_rows):
        anchor = legit_rows[rng.integers(0, len(legit_rows), n_clusters)]
        card[rows] = card[anchor][cluster]
        first = ts[anchor] + rng.uniform(600.0, 6 * 3600.0, n_clusters)
        ts[rows] = _spread(rng, rows, cluster, first, window, end)
