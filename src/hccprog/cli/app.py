"""The ``hccprog`` application: its one error path, the model lists in help, signals and logging."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from hccprog import __version__
from hccprog.errors import describe

out = Console()


err = Console(stderr=True)


_DEBUG = {"on": bool(os.environ.get("HCCPROG_DEBUG"))}


class _Group(typer.core.TyperGroup):
    """The one error path of the command line: an expected failure (:class:`HccprogError`), an
    operating-system error or an unexpected exception is printed as one message, exit 1; the
    traceback only with ``--debug``. Ctrl-C says how to resume, exit 130; a closed pipe on stdout
    (``| head``) ends quietly, exit 141."""

    def invoke(self, ctx):
        previous = _on_sigterm()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt as exc:
            if _DEBUG["on"]:
                raise
            _interrupted(ctx, signal_name="SIGTERM" if isinstance(exc, _Terminated) else None)
            raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
        except BrokenPipeError:  # the reader went away (``hccprog ... | head``): stop quietly, as on SIGPIPE
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
            raise typer.Exit(141) from None
        except Exception as exc:
            if _DEBUG["on"]:
                raise
            message, hint = describe(exc)
            err.print(f"[bold red]error[/]: {escape(message)}", highlight=False, soft_wrap=True)
            if hint:
                err.print(f"[dim]hint[/]: {escape(hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


#: Placeholders in option help that :class:`ModelListCommand` fills from the registry.
MODELS = "{models}"


ABLATION_MODELS = "{ablation_models}"


class ModelListCommand(typer.core.TyperCommand):
    """A command whose options' help lists the registered models (``model_names()``, built-ins and
    plugins alike). The list is filled in when the help is shown, since the registry loads torch: the
    other uses of the command do not pay for it."""

    def format_help(self, ctx, formatter) -> None:
        from hccprog.models.registry import get_model, model_names

        names = model_names()
        lists = {MODELS: ", ".join(names),
                 ABLATION_MODELS: ", ".join(n for n in names if get_model(n).ablations)}
        for param in self.params:
            text = getattr(param, "help", None)
            if text:
                for key, value in lists.items():
                    text = text.replace(key, value)
                param.help = text
        super().format_help(ctx, formatter)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster's scheduler, ``kill``): unwinds like Ctrl-C, so that staging folders are
    removed and finished folds kept, and says so."""


def _on_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while a command runs; returns the handler it replaced
    (None where no handler can be set: outside the main thread)."""
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding host): leave signals alone
        return None


def _interrupted(ctx, *, signal_name: str | None = None) -> None:
    sub = ctx.invoked_subcommand or ""
    if sub in ("train", "ablation"):
        what = ("finished folds are kept: run the same command again to resume at the fold it stopped in "
                "(--overwrite is not needed; nothing was written under --out)")
    elif sub in ("baselines", "predict", "propagate", "synth", "import", "evaluate"):
        what = "nothing was written under --out: run the same command again to start over"
    else:
        what = "nothing was written"
    head = f"terminated ({signal_name})" if signal_name else "interrupted"
    err.print(f"[yellow]{head}[/]: {what}", highlight=False, soft_wrap=True)


app = typer.Typer(
    name="hccprog",
    cls=_Group,
    help="Multimodal prognosis of HCC treated with TACE: cohorts, models, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"hccprog {__version__}")
        raise typer.Exit()


class _LogLine(logging.Handler):
    """hccprog's log messages (a discarded resumable state, a skipped patient) as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning" if record.levelno >= logging.WARNING else "note"
        err.print(f"[yellow]{level}[/]: {escape(record.getMessage())}", highlight=False, soft_wrap=True)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error (also HCCPROG_DEBUG=1).")
    ] = False,
) -> None:
    """hccprog: train, validate and explain HCC-TACE prognostic models."""
    _DEBUG["on"] = debug or bool(os.environ.get("HCCPROG_DEBUG"))
    log = logging.getLogger("hccprog")
    if not any(isinstance(h, _LogLine) for h in log.handlers):
        log.addHandler(_LogLine())
    log.setLevel(logging.INFO)
    log.propagate = False


def main() -> None:
    app()
