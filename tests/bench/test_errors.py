"""The exception trees drawn in bench/errors.py and core/errors.py are the real class hierarchy."""

import re

import pytest

import bench.errors
import core.errors

_NODE = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+)")


def drawn_tree(doc: str) -> dict[str, str | None]:
    """{class name: parent's name} from the box-drawing tree that opens a docstring."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []        # (column, name) of the nodes above the current one
    for line in doc.splitlines()[2:]:
        if not line.startswith("    "):
            break                            # the tree is the first indented block
        m = _NODE.match(line)
        if m is None:
            continue                         # a description's second line
        col = len(m.group("lead"))
        while stack and stack[-1][0] >= col:
            stack.pop()
        parents[m.group("name")] = stack[-1][1] if stack else None
        stack.append((col, m.group("name")))
    return parents


@pytest.mark.parametrize("module", [core.errors, bench.errors], ids=lambda m: m.__name__)
def test_the_drawn_tree_is_the_class_tree(module):
    tree = drawn_tree(module.__doc__)
    assert set(module.__all__) <= set(tree), f"not drawn: {set(module.__all__) - set(tree)}"
    for name, parent in tree.items():
        cls = getattr(module, name, None) or getattr(core.errors, name)
        if parent is None:
            assert cls is core.errors.FraudstreamError
        else:
            assert cls.__bases__ == (getattr(module, parent, None) or getattr(core.errors, parent),), name


def test_bench_errors_are_project_errors_but_not_the_scoring_loops():
    """`bench`'s CLI prints any FraudstreamError as one line; core.PipelineError stays the
    scoring loop's own (an embedder catching it must not catch harness failures)."""
    for name in bench.errors.__all__:
        cls = getattr(bench.errors, name)
        assert issubclass(cls, bench.errors.BenchError)
        assert issubclass(cls, core.errors.FraudstreamError)
        assert not issubclass(cls, core.errors.PipelineError)
