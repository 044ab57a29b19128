"""Run the steps that make an image on the host: ``build`` and ``load``.

A build tags its reference itself, and only when it succeeds: a failed build leaves the
tag where it was. The built image carries its inputs' digest as a label, which the next plan
compares. A load brings in the archive's one image, then the step tags it; an archive holding
several images, or none, tags nothing. Both run under their own deadline (``--build-timeout``).
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.daemon.host import BuildFailed, BuildRequest, DockerHost
from reconciler.execution.step_errors import StepFailed
from reconciler.model.build_inputs import INPUTS_LABEL
from reconciler.model.inventory import short_id
from reconciler.model.plan import Step
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome, StepResult

OutputCallback = Callable[[str, str], None]  # (the step's reference, one line of output)


class ImageMaker:
    """Builds and loads through ``host``, each within ``timeout`` seconds."""

    def __init__(self, host: DockerHost, timeout: float, on_output: OutputCallback | None = None) -> None:
        self.host = host
        self.timeout = timeout
        self.on_output = on_output

    def build(self, step: Step) -> StepResult:
        recipe = step.build
        assert recipe is not None and step.inputs is not None
        request = BuildRequest(
            context=recipe.context,
            dockerfile=recipe.dockerfile,
            tag=step.ref,
            labels={INPUTS_LABEL: step.inputs},
            args=dict(recipe.args),
            target=recipe.target,
            buildkit=recipe.builder.value == "buildkit",
        )
        try:
            built = self.host.build_image(request, self.timeout, self._lines(step))
        except BuildFailed as exc:
            return _failed(step, f"the build failed, so {step.ref} was not tagged: {exc}", exc)
        image = self.host.inspect_image(step.ref)
        if image is None or (built and image.id != built):
            raise StepFailed(f"the build reported {short_id(built)}, but {step.ref} does not point at it")
        detail = "built" if image.id != step.image_id else "built; the image did not change"
        return StepResult(step, Outcome.DONE, f"{detail} ({short_id(image.id)})", image_id=image.id, bytes=image.size)

    def load(self, step: Step) -> StepResult:
        assert step.archive is not None
        try:
            loaded = self.host.load_image(step.archive, self.timeout, self._lines(step))
        except BuildFailed as exc:
            return _failed(step, f"the load failed, so {step.ref} was not tagged: {exc}", exc)
        if len(loaded) != 1:
            what = "no image" if not loaded else f"{len(loaded)} images ({', '.join(short_id(i) for i in loaded)})"
            raise StepFailed(
                f"the archive {step.archive} held {what}, so {step.ref} was not tagged;"
                " a source: load archive must hold exactly one image (`docker save` of one image)"
            )
        target = parse_reference(step.ref)
        assert target.tag is not None
        self.host.tag(loaded[0], target.name, target.tag)
        image = self.host.inspect_image(loaded[0])
        return StepResult(
            step,
            Outcome.DONE,
            f"loaded ({short_id(loaded[0])})",
            image_id=loaded[0],
            bytes=image.size if image else None,
        )

    def _lines(self, step: Step) -> Callable[[str], None]:
        on_output = self.on_output
        if on_output is None:
            return lambda line: None
        return lambda line: on_output(step.ref, line)


def _failed(step: Step, message: str, error: BuildFailed) -> StepResult:
    return StepResult(step, Outcome.FAILED, message, daemon_lost=error.lost)
