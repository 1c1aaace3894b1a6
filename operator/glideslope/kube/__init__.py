"""Adapters to the Kubernetes API: revisions' Deployments, Services, traffic routers, Events.

The only package that imports the `kubernetes` client; each module is one kind of object.
"""
