"""Where a webhook may be sent: to public addresses only, unless the operator allows a network.

A client names the URL, so without this rule any client could make the server send requests
into the server's own network (its loopback, a metadata service at 169.254.169.254, a private
admin port). An address is allowed when it is globally reachable, or lies in one of
``webhooks.allowed_networks`` (for example ``127.0.0.0/8`` for a receiver on the same machine).
The rule is checked twice: on the URL's literal address when the task is created (a client
learns at once), and on every address its host resolves to when the delivery is made, which
then connects to the very address it checked, so that a name that resolves elsewhere between
the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """The URL's host is, or resolves to, an address webhooks may not be sent to."""


def is_allowed(address: Address, allowed_networks: Sequence[Network] = ()) -> bool:
    """Globally reachable (not loopback, private, link-local, shared, multicast, reserved,
    documentation or unspecified), or inside a network the operator allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed_networks if network.version == address.version):
        return True
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> Address | None:
    """The address a URL's host names without DNS: an IP literal, or a name RFC 6761 reserves
    for loopback ('localhost' and its subdomains). None for any other name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return ipaddress.ip_address("127.0.0.1")
    return None


def check_literal(url: str, allowed_networks: Sequence[Network] = ()) -> None:
    """At task creation: refuse a URL whose host is an address webhooks may not reach."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is not None and not is_allowed(address, allowed_networks):
        raise TargetRefused(_refusal(host, address))


def resolve_allowed(host: str, port: int, allowed_networks: Sequence[Network] = ()) -> Address:
    """At delivery: the address to connect to. Every address the host resolves to must be
    allowed (one bad answer refuses the URL: which one a connection would take is not ours to
    choose); TargetRefused otherwise, OSError when the name does not resolve."""
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                 for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    for address in addresses:
        if not is_allowed(address, allowed_networks):
            raise TargetRefused(_refusal(host, address))
    return addresses[0]


def _refusal(host: str, address: Address) -> str:
    return (f"{host} is {address}, an address in the server's own or a private network; webhooks go to "
            "public addresses only (an operator can allow networks with webhooks.allowed_networks)")
