"""crossrank's exceptions: one base class, and subclasses of the built-in
exception each kind of failure is (so ``except FileNotFoundError`` and
``except ValueError`` keep working)."""


class Error(Exception):
    """Any error crossrank raises (its message is the core's one line)."""


class ModelNotFoundError(Error, FileNotFoundError):
    """A checkpoint, or a file it needs, does not exist."""


class ModelIOError(Error, OSError):
    """Reading, writing or downloading a checkpoint failed."""


class InvalidInputError(Error, ValueError):
    """Bad input: options, texts, a malformed checkpoint or configuration."""


class DeviceError(Error, RuntimeError):
    """The compute device could not be created or failed."""
