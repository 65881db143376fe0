"""Whether ALLOWED_HOSTS, as Django applies it, accepts the health check's Host header
(`shipit check`).

Run as `python -c "$PY_ALLOWED_HOST" MANAGE HOST`, in the live release; fails when it does not.
"""

import os
import sys


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
    import django

    django.setup()
    from django.conf import settings
    from django.http.request import split_domain_port, validate_host

    host = sys.argv[2]
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, port = split_domain_port(host)
    ok = bool(domain) and validate_host(domain, allowed)
    verdict = "accepted" if ok else "NOT accepted"
    print("Host %s is %s by ALLOWED_HOSTS = %r" % (host, verdict, allowed))
    sys.exit(0 if ok else 1)


main()
