"""Every URL pattern the project serves, with a sample URL that resolves to it.

Walks django.urls.get_resolver() recursively and fills each path converter or regex group with a sample
value its pattern accepts, so a page or endpoint added later is walked too.
"""

import re
import uuid
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

SAMPLE_BY_CONVERTER = {"int": "1", "str": "sample", "slug": "sample", "path": "sample/1", "uuid": str(uuid.UUID(int=1))}
SAMPLE_CANDIDATES = ("1", "sample", "sample-1")
CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    route: str  # the pattern as ResolverMatch.route spells it
    url: str  # a sample URL resolving to it
    name: str | None  # namespaced URL name, when it has one

    def __str__(self) -> str:
        return self.name or self.route


def _group_end(regex: str, start: int) -> int:
    """The index just past the group opening at `start`, skipping escaped characters and classes."""
    depth, index, in_class = 0, start, False
    while index < len(regex):
        char = regex[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError(f"unbalanced group in {regex!r}")


def _sample_for_group(body: str) -> str:
    alternatives = [alt for alt in body.split("|") if re.fullmatch(r"[\w.-]+", alt)]
    for candidate in (*SAMPLE_CANDIDATES, *alternatives[:1]):
        if re.fullmatch(body, candidate):
            return candidate
    if re.fullmatch(body, ""):
        return ""
    raise ValueError(f"no sample value for the group ({body})")


def _sample_regex(regex: str) -> str:
    out, index = [], 0
    regex = regex.removeprefix("^").removesuffix("$").removesuffix("\\Z")
    while index < len(regex):
        if regex.startswith("(?P<", index):
            end = _group_end(regex, index)
            body = regex[regex.index(">", index) + 1 : end - 1]
            out.append(_sample_for_group(body))
            index = end
        elif regex[index] == "(":  # an unnamed group, e.g. the admin's history pages
            end = _group_end(regex, index)
            out.append(_sample_for_group(regex[index + 1 : end - 1]))
            index = end
        elif regex[index] == "\\":
            out.append(regex[index + 1])
            index += 2
        else:
            out.append(regex[index])
            index += 1
    return "".join(out)


def _sample(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        route = str(pattern)
        return CONVERTER.sub(lambda m: SAMPLE_BY_CONVERTER[m["converter"] or "str"], route)
    if isinstance(pattern, RegexPattern):
        return _sample_regex(pattern._regex)
    raise TypeError(f"unknown pattern type {type(pattern)!r}")


def _walk(resolver: URLResolver, url: str, route: str, namespace: str) -> list[Route]:
    found = []
    for entry in resolver.url_patterns:
        part_url, part_route = url + _sample(entry.pattern), route + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found += _walk(entry, part_url, part_route, inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            found.append(Route(route=part_route, url=part_url, name=name))
    return found


def _anchorless(route: str) -> str:
    return re.sub(r"(?<!\\)[$^]|\\Z", "", route)


def all_routes() -> list[Route]:
    """Every leaf URL pattern of the project, each with a sample URL that resolves to that very pattern."""
    routes = []
    for found in _walk(get_resolver(), "/", "", ""):
        match = resolve(found.url)
        if _anchorless(match.route) != _anchorless(found.route):
            raise AssertionError(f"{found.url} resolves to {match.route!r}, not to {found.route!r}")
        routes.append(found)
    return routes
