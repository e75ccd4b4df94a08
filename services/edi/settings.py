"""The EDI adapter's settings (environment variables, documented in README.md "Supplier EDI adapter")."""

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backbone.contracts.types import Identifier
from backbone.settings import ServiceSettings
from services.edi.documents import Partner, Standard

# One interchange is one transaction: bigger files are refused before parsing (a supplier splits them).
DEFAULT_MAX_INTERCHANGE_BYTES = 5 * 1024 * 1024
_EDI_ID = r"^[A-Za-z0-9 ._/&:@-]{1,35}$"  # what fits an ISA06 (15) or a UNB party id (35), no separators


class PartnerSettings(BaseModel):
    """One supplier we exchange EDI with: who it is in our contract and in its envelopes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    supplier_id: Identifier = Field(description="The supplier_id of procurement's catalogue")
    standard: Standard
    their_id: str = Field(pattern=_EDI_ID, description="ISA06 / UNB sender id of the supplier's documents")
    our_id: str = Field(pattern=_EDI_ID, description="ISA08 / UNB recipient id: us, as the supplier knows us")
    their_qualifier: str = Field(
        default="", pattern=r"^[A-Za-z0-9]{0,4}$", description="Default ZZ (X12), ZZZ (EDIFACT)"
    )
    our_qualifier: str = Field(default="", pattern=r"^[A-Za-z0-9]{0,4}$")
    x12_version: Literal["00401", "00501"] = Field(
        default="00401", description="ISA12; 00501 partners get 999 acknowledgements, 00401 ones 997"
    )
    test: bool = Field(default=False, description="Mark our interchanges as test data (ISA15 T / UNB 0035 1)")

    @model_validator(mode="after")
    def _x12_ids_fit(self) -> Self:
        if self.standard == "x12" and (len(self.their_id) > 15 or len(self.our_id) > 15):
            raise ValueError(f"partner {self.supplier_id!r}: X12 interchange ids have at most 15 characters")
        return self

    def partner(self) -> Partner:
        x12 = self.standard == "x12"
        default_qualifier = "ZZ" if x12 else "ZZZ"
        return Partner(
            supplier_id=self.supplier_id,
            standard=self.standard,
            their_id=self.their_id,
            our_id=self.our_id,
            their_qualifier=self.their_qualifier or default_qualifier,
            our_qualifier=self.our_qualifier or default_qualifier,
            x12_version=self.x12_version,
            acknowledgement=("999" if self.x12_version == "00501" else "997") if x12 else "CONTRL",
            test=self.test,
        )


class EdiSettings(ServiceSettings):
    service_name: str = "edi"
    edi_partners: list[PartnerSettings] = Field(
        default_factory=list,
        description="EDI_PARTNERS: a JSON list of trading partners (see PartnerSettings); an interchange from"
        " a sender not listed is rejected",
    )
    edi_inbox_dir: Path = Field(
        default=Path("edi/inbox"),
        description="EDI_INBOX_DIR: watched for inbound interchanges; each file is moved to processed/ or"
        " rejected/ (with a .reason file) under it once handled",
    )
    edi_outbox_dir: Path = Field(
        default=Path("edi/outbox"),
        description="EDI_OUTBOX_DIR: purchase orders and acknowledgements, one folder per supplier_id",
    )
    edi_poll_interval_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="EDI_POLL_INTERVAL_SECONDS"
    )
    edi_max_interchange_bytes: int = Field(
        default=DEFAULT_MAX_INTERCHANGE_BYTES,
        ge=1024,
        le=100 * 1024 * 1024,
        description="EDI_MAX_INTERCHANGE_BYTES",
    )

    @model_validator(mode="after")
    def _partners_distinct(self) -> Self:
        seen: dict[tuple[str, str], str] = {}
        suppliers: set[str] = set()
        for p in self.edi_partners:
            key = (p.standard, p.their_id)
            if key in seen:
                raise ValueError(
                    f"EDI_PARTNERS: {p.their_id!r} is the sender id of both {seen[key]!r}"
                    f" and {p.supplier_id!r}"
                )
            if p.supplier_id in suppliers:
                raise ValueError(f"EDI_PARTNERS: supplier {p.supplier_id!r} is listed twice")
            seen[key] = p.supplier_id
            suppliers.add(p.supplier_id)
        return self
