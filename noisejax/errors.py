"""One error type for bad user input, with a one-line message."""


class ConfigError(ValueError):
  """A config field holds a value noisejax cannot use.

  The message is one line: the field, the bad value, why, and the valid choices.
  """

  def __init__(self, field, value, choices=None, reason=None):
    self.field = field
    self.value = value
    self.choices = tuple(choices) if choices is not None else None
    reason = reason or "unknown value"
    message = f"config.{field}={value!r} is invalid: {reason}"
    if self.choices:
      message += "; valid: " + ", ".join(str(c) for c in self.choices)
    super().__init__(message)


def check_choice(field, value, choices):
  """Returns `value` if it is one of `choices`, else raises ConfigError."""
  if value not in choices:
    raise ConfigError(field, value, choices)
  return value


def check_range(field, value, low, high, *, low_open=False, high_open=True):
  """Checks low <= value < high (ends open or closed as asked)."""
  ok_low = value > low if low_open else value >= low
  ok_high = value < high if high_open else value <= high
  if not (ok_low and ok_high):
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    raise ConfigError(field, value, reason=f"must lie in {lo}{low}, {high}{hi}")
  return value


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or Inf loss; the last good checkpoint is kept."""
