"""A real local HTTP server that speaks the JumpCloud Directory Insights API.

It serves whatever raw events it is given, the way the real API does (reference §6 of
``jumpcloud-di-api.md``): the four POST endpoints under ``/insights/directory/v1``, API key
or Bearer auth with repeated ``x-org-id``, the documented validation messages, paging by
``search_after`` with the ``X-*`` headers, ``fields`` projection, ``search_term`` filters
and a set of injectable faults. The client, the service and the ``simulate`` command are
all tested against it, so it must behave like the API, not like a convenient fake.

Choices where the real API is undocumented (all marked [?] in the reference):

- Time filtering is at millisecond precision, inclusive at both ends (the index stores
  ``timestamp`` as an Elasticsearch ``date``); ``start_time == end_time`` is allowed.
- ``limit`` above 10000 is clamped to 10000; anything that is not a positive integer
  gives the default 1000.
- Empty pages repeat the request's ``search_after`` in ``X-Search_after``, or omit the
  header when the request had none.
- Searching a non-searchable field (``changes``, ``useragent``, ``system_timestamp``) is a
  400 rather than a silent non-match, so a rule author learns about it at once.
- ``/events/distinct`` returns the top 10 buckets (the Elasticsearch ``terms`` default).

Modules, one job each: ``constants`` (path, services, limits, messages), ``query``
(request validation), ``search`` (``search_term``, distinct values, ``fields``),
``index`` (the sorted events), ``endpoints`` (the four answers), ``faults`` (fault
injection and ``--fault`` names) and ``server`` (HTTP, auth, request records).
"""

from alerting.simulator.di_api.constants import API_PREFIX, DEMO_API_KEY, SERVICES
from alerting.simulator.di_api.faults import Faults, parse_faults
from alerting.simulator.di_api.server import DIApiServer, RequestRecord

__all__ = [
    "API_PREFIX",
    "DEMO_API_KEY",
    "SERVICES",
    "DIApiServer",
    "Faults",
    "RequestRecord",
    "parse_faults",
]
