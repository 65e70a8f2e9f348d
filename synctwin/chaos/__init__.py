"""synctwin as a Chaos Toolkit extension: faults on a live stack and the probes that show their effect.

Experiments name Python activities in :mod:`synctwin.chaos.actions` and :mod:`synctwin.chaos.probes`;
every one takes the experiment's ``configuration`` (see :mod:`synctwin.chaos.settings` for the keys), so
the stock ``chaos run experiment.yaml`` drives a running stack as well as ``synctwin chaos`` does. A
stack started by synctwin serves a control API (:mod:`synctwin.chaos.control`): its processes (kill -9,
restart after a delay), its links (the fault proxies, Toxiproxy's API) and its ERP twins' fault modes,
each change recorded on the run's fault timeline.
"""
