"""Resolvers: kernel ids -> mounts, images, cgroups, containers, content identity."""
