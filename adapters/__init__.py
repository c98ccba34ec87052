"""Broker adapters: implementations of messaging.port.Broker."""
