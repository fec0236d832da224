"""Rosters: the policy, the walking network, assignment of people and the 15-minute circle."""
