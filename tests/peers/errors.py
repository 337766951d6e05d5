"""What a real peer raises once it is up and misbehaves: a test failure, never a skip."""


class PeerError(Exception):
    """A real peer (or the loopback it runs on) did not do what the harness needs."""


class AsteriskError(PeerError):
    """Something failed once the PBX was up: a test failure, never a skip."""


class KannelError(PeerError):
    pass
