"""The script sandbox: every expression and script in a process runs here, never in plain exec/eval.

* :class:`Sandbox` compiles under :mod:`~engine.sandbox.policy`, runs with the hooks of
  :mod:`~engine.sandbox.guards` and the CPU budget of :mod:`~engine.sandbox.budget`;
* :class:`SandboxScriptEngine` plugs it into SpiffWorkflow;
* :func:`script_error_in` digs our ScriptError out of the exceptions Spiff wraps around it.

What designers may write is in ``docs/sandbox.md``.
"""

from engine.sandbox.core import Sandbox
from engine.sandbox.spiff import SandboxScriptEngine, script_error_in

__all__ = ["Sandbox", "SandboxScriptEngine", "script_error_in"]
