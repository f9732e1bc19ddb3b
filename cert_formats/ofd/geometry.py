"""Boxes, affine matrices and path bounds in OFD page space (millimetres, y down)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .model import ArcTo, ClosePath, CubicTo, LineTo, MoveTo, PathCommand, QuadTo


def fmt_number(value: float) -> str:
    """A number as the writer puts it in XML: up to 3 decimals (1 µm), never ``-0``."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class Box:
    """An ``ST_Box``: top-left corner and size."""

    x: float
    y: float
    width: float
    height: float

    def st_box(self) -> str:
        """The ``"x y w h"`` attribute text."""
        return " ".join(fmt_number(v) for v in (self.x, self.y, self.width, self.height))

    def expanded(self, margin: float) -> Box:
        """The box grown by ``margin`` on every side (room for a stroke)."""
        return Box(self.x - margin, self.y - margin, self.width + 2 * margin,
                   self.height + 2 * margin)

    @classmethod
    def around(cls, points: Iterable[tuple[float, float]]) -> Box:
        """The smallest box holding ``points`` (at least one)."""
        xs: list[float] = []
        ys: list[float] = []
        for px, py in points:
            xs.append(px)
            ys.append(py)
        return cls(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


@dataclass(frozen=True)
class Matrix:
    """An ``ST_Array`` CTM ``a b c d e f``: (x, y) -> (a x + c y + e, b x + d y + f)."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 1.0
    e: float = 0.0
    f: float = 0.0

    def apply(self, x: float, y: float) -> tuple[float, float]:
        """Map one point."""
        return (self.a * x + self.c * y + self.e, self.b * x + self.d * y + self.f)

    @property
    def scale(self) -> float:
        """The mean linear scale factor (square root of the determinant's size)."""
        return math.sqrt(abs(self.a * self.d - self.b * self.c))

    @property
    def rotation_deg(self) -> float:
        """The rotation of the x axis, in degrees."""
        return math.degrees(math.atan2(self.b, self.a))

    @property
    def is_identity(self) -> bool:
        """True for the identity matrix."""
        return self == Matrix()


def arc_center(x0: float, y0: float, arc: ArcTo) -> tuple[float, float, float, float] | None:
    """Centre and corrected radii ``(cx, cy, rx, ry)`` of an SVG-style arc, or ``None``.

    The endpoint-to-centre conversion of SVG 1.1 appendix F.6.5, radii scaled up
    when too small to reach the endpoint (F.6.6). ``None`` for a zero-length arc.
    """
    if x0 == arc.x and y0 == arc.y:
        return None
    phi = math.radians(arc.rotation)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx, dy = (x0 - arc.x) / 2, (y0 - arc.y) / 2
    x1p = cos_p * dx + sin_p * dy
    y1p = -sin_p * dx + cos_p * dy
    rx, ry = abs(arc.rx), abs(arc.ry)
    lam = (x1p * x1p) / (rx * rx) + (y1p * y1p) / (ry * ry)
    if lam > 1:
        rx, ry = rx * math.sqrt(lam), ry * math.sqrt(lam)
    num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p
    den = rx * rx * y1p * y1p + ry * ry * x1p * x1p
    coef = math.sqrt(max(0.0, num / den)) if den else 0.0
    if arc.large_arc == arc.sweep:
        coef = -coef
    cxp, cyp = coef * rx * y1p / ry, -coef * ry * x1p / rx
    cx = cos_p * cxp - sin_p * cyp + (x0 + arc.x) / 2
    cy = sin_p * cxp + cos_p * cyp + (y0 + arc.y) / 2
    return cx, cy, rx, ry


def path_bounds(commands: Iterable[PathCommand]) -> Box:
    """A box holding the whole path: points, control points and arcs' full ellipses.

    Conservative for curves (their control polygon bounds them) and arcs (the
    ellipse bounds the arc), exact for lines: a ``Boundary`` may be larger than
    the ink, never smaller.
    """
    points: list[tuple[float, float]] = []
    cur = (0.0, 0.0)
    start = cur
    for cmd in commands:
        if isinstance(cmd, MoveTo):
            cur = start = (cmd.x, cmd.y)
            points.append(cur)
        elif isinstance(cmd, LineTo):
            cur = (cmd.x, cmd.y)
            points.append(cur)
        elif isinstance(cmd, QuadTo):
            points += [(cmd.x1, cmd.y1), (cmd.x, cmd.y)]
            cur = (cmd.x, cmd.y)
        elif isinstance(cmd, CubicTo):
            points += [(cmd.x1, cmd.y1), (cmd.x2, cmd.y2), (cmd.x, cmd.y)]
            cur = (cmd.x, cmd.y)
        elif isinstance(cmd, ArcTo):
            centre = arc_center(cur[0], cur[1], cmd)
            if centre is not None:
                cx, cy, rx, ry = centre
                phi = math.radians(cmd.rotation)
                half_w = math.hypot(rx * math.cos(phi), ry * math.sin(phi))
                half_h = math.hypot(rx * math.sin(phi), ry * math.cos(phi))
                points += [(cx - half_w, cy - half_h), (cx + half_w, cy + half_h)]
            cur = (cmd.x, cmd.y)
            points.append(cur)
        elif isinstance(cmd, ClosePath):
            cur = start
    return Box.around(points)
