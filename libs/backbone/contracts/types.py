"""Value types shared by the event contracts; strict so that bad input is refused, never coerced."""

from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints

# Ids and SKUs: non-empty, no surrounding whitespace (a trailing space would be a different SKU).
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S(?:.*\S)?$")]
Sku = Identifier
# Quantities are whole, positive units; strict mode refuses "5" and 5.0.
Quantity = Annotated[int, Field(gt=0, le=1_000_000_000)]
NonNegativeQuantity = Annotated[int, Field(ge=0, le=1_000_000_000)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
