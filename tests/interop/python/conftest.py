"""Fixtures for the Switchboard interop suite (Autobahn|Python side)."""

from __future__ import annotations

import pytest

from interop_router import Router, start_router


@pytest.fixture(scope="module")
def router():
    """One router process for the whole test module."""
    r = start_router()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture()
def fresh_router():
    """A router process of its own for one test (for tests that stop it)."""
    r = start_router()
    try:
        yield r
    finally:
        r.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the router's log tail to failing tests' reports."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {}) or {}
        seen = set()
        for value in funcargs.values():
            # a Router fixture, or a fixture object carrying one as .router
            r = value if isinstance(value, Router) else getattr(value, "router", None)
            if isinstance(r, Router) and id(r) not in seen:
                seen.add(id(r))
                report.sections.append((f"{r.kind} log tail ({r.log_path})", r.log_tail(40)))
