"""The loop a client's own thread runs: uvloop where it is installed (a dependency here)."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from roost.client import SyncClient
from roost.client.loops import new_loop
from roost.eshet.sync_client import SyncClient as EshetSyncClient
from tests.conftest import BrokerThread


def test_new_loop_is_uvloop_when_installed() -> None:
    loop = new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_new_loop_without_uvloop_is_asyncios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # importing it now fails
    loop = new_loop()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
    finally:
        loop.close()


def test_sync_clients_run_on_uvloop(broker_thread: BrokerThread) -> None:
    with SyncClient(server=broker_thread.address) as client:
        client.action_register("/echo", lambda value: value)
        assert client.action_call("/echo", 5) == 5
        assert isinstance(client._loop, uvloop.Loop)
    eshet = EshetSyncClient(server=broker_thread.address)
    try:
        eshet.wait_for_connection().result(5)
        assert eshet.action_call("/missing").exception(5) is not None
        assert isinstance(eshet.loop, uvloop.Loop)
    finally:
        eshet.close().result(5)
