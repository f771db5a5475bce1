"""Where webhooks may go: the address rule on its own, at task creation, and at delivery.

Every request here goes to loopback; refusals of other addresses are checked on the rule, never
by letting the server send there."""

from __future__ import annotations

import ipaddress

import pytest

from asr_server.service.task_options import OptionError, parse_task_options
from asr_server.service.webhook_targets import TargetRefused, check_literal, is_allowed, resolve_allowed
from asr_server.service.webhooks import post
from webhook_receiver import Receiver

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.10.0.5", "::1", "0.0.0.0", "10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "fc00::1", "fd12::1", "fe80::1", "224.0.0.1", "ff02::1", "240.0.0.1",
    "255.255.255.255", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "192.0.2.1", "198.18.0.1",
])
def test_addresses_of_the_servers_own_or_private_networks_are_refused(address):
    assert not is_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert is_allowed(ipaddress.ip_address(address))


def test_an_allowed_network_admits_its_addresses_and_no_others():
    assert is_allowed(ipaddress.ip_address("127.0.0.1"), LOOPBACK)
    assert not is_allowed(ipaddress.ip_address("10.0.0.1"), LOOPBACK)
    assert not is_allowed(ipaddress.ip_address("::1"), LOOPBACK), "an IPv4 network admits no IPv6 address"


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8000/hook", "http://[::1]/hook",
    "http://0.0.0.0/", "http://10.0.0.7/hook", "https://192.168.0.1/", "http://localhost/hook",
    "http://api.localhost/hook", "http://[::ffff:127.0.0.1]/",
])
def test_a_literal_address_is_refused_when_the_task_is_created(url):
    with pytest.raises(OptionError, match="callback_url") as refused:
        parse_task_options({"callback_url": url})
    assert "webhooks.allowed_networks" in str(refused.value)


def test_a_host_name_is_not_resolved_when_the_task_is_created():
    check_literal("https://hooks.example.org/asr")  # no DNS here; its addresses are checked at delivery


def test_an_operator_can_allow_a_network_for_a_receiver_on_the_same_machine():
    assert parse_task_options({"callback_url": "http://127.0.0.1:9/hook"}, LOOPBACK) == {
        "callback_url": "http://127.0.0.1:9/hook"}


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "0x7f.1"])
def test_every_address_a_host_resolves_to_is_checked_at_delivery(host):
    with pytest.raises(TargetRefused):
        resolve_allowed(host, 80)


def test_a_delivery_to_a_refused_address_makes_no_connection():
    receiver = Receiver()
    try:
        with pytest.raises(TargetRefused):
            post(receiver.url.replace("127.0.0.1", "localhost") + "/hook", b"{}", {}, 5)
        assert receiver.paths == []
    finally:
        receiver.close()


def test_a_redirect_is_never_followed():
    target = Receiver()
    redirecting = Receiver(status=307, location=target.url + "/elsewhere")
    try:
        assert post(redirecting.url + "/hook?x=1", b"{}", {}, 5, LOOPBACK) == 307
        assert redirecting.paths == ["/hook?x=1"] and target.paths == []
    finally:
        target.close()
        redirecting.close()
