"""Partner programs: the catalog of programs organizations can be members of."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.database import Database
from common.errors import Conflict
from common.pagination import Page
from common.principal import Principal
from directory import schemas as s
from directory.models import PartnerProgram
from directory.services.records import Entity, page


def program_out(p: PartnerProgram) -> s.ProgramOut:
    return s.ProgramOut.model_validate(p)


def _out(session: Session, p: PartnerProgram) -> s.ProgramOut:
    return program_out(p)


PROGRAMS = Entity(PartnerProgram, "program", "partner_program", _out)


def create_program(db: Database, principal: Principal, data: s.ProgramCreate) -> s.ProgramOut:
    with db.transaction() as session:
        if session.scalar(select(PartnerProgram.id).where(PartnerProgram.key == data.key)):
            raise Conflict(f"program {data.key!r} already exists")
        return PROGRAMS.create(
            session, principal, PartnerProgram(**data.model_dump()), f"program {data.key!r}"
        )


def list_programs(db: Database, principal: Principal, query: s.ListQuery) -> Page[s.ProgramOut]:
    with db.transaction() as session:
        rows, cursor = page(session, select(PartnerProgram), PartnerProgram, query)
        return Page[s.ProgramOut](items=[program_out(r) for r in rows], next_cursor=cursor)


def get_program(db: Database, principal: Principal, program_id: int) -> s.ProgramOut:
    with db.transaction() as session:
        return program_out(PROGRAMS.get(session, principal, program_id))


def update_program(
    db: Database, principal: Principal, program_id: int, if_match: str | None, data: s.ProgramUpdate
) -> s.ProgramOut:
    with db.transaction() as session:
        program = PROGRAMS.get_for_update(session, principal, program_id, if_match)
        return PROGRAMS.update(session, principal, program, data.model_dump(exclude_unset=True))
