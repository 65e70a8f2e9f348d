"""Ray, for both engines: start or join a cluster, and host plain classes as actors.

Nothing here knows a twin or the hub; the engines hand their host classes to
:func:`actors.runtime.actor_class`.
"""
