"""Identity and access commands: ``plinth token create|list|revoke`` and
``plinth role grant|revoke|list``.

The commands act with the catalog's own credentials: whoever can write the catalog
administers it. The HTTP APIs are where roles are enforced (see docs/security.md). In remote
mode (``PLINTH_URL``) they go through the server as the token's owner, who must be an admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.governance.roles import RoleBindingInfo

token_app = typer.Typer(
    help="API tokens (plt_...): create (shown once), list, revoke.", no_args_is_help=True
)
role_app = typer.Typer(
    help="Roles per project (viewer, developer, deployer, admin): grant, revoke, list.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project", help="Project of the role (default: PLINTH_PROJECT).", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    """Add the token and role commands to ``app``."""
    app.add_typer(token_app, name="token")
    app.add_typer(role_app, name="role")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. ci-deploy.")],
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner", help="Who the token acts for (default: PLINTH_USER).", show_default=False
        ),
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 90m, 12h, 30d, 2w, 1y or never.")
    ] = "90d",
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="A role for this token alone (viewer, developer, deployer, admin); without "
            "it the token has its owner's role.",
            show_default=False,
        ),
    ] = None,
    project: ProjectOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it once: it is stored only as a hash."""
    from plinth.cli.output import console, print_json, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        new = client.create_token(name, owner=owner, expires=expires, role=role, project=project)
        project = project or client.whoami().project
    info = new.info
    if as_json:
        print_json({**info.to_dict(), "token": new.secret, "role": role, "project": project})
        return
    print(new.secret)  # plain: never wrapped or styled, so it copies whole
    expiry = f"expires {when(info.expires_at)} UTC" if info.expires_at else "never expires"
    acting = f"role {role} in project '{project}'" if role else "its owner's role"
    console.print(
        f"Token {info.id} '{info.name}' for {info.owner}, {acting}; {expiry}.\n"
        "Copy it now: it is not shown again. Send it as 'Authorization: Bearer <token>'."
    )


@token_app.command("list")
def token_list(
    show_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets): id, name, owner, status, expiry, last use."""
    from plinth.cli.output import console, print_json, styled, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        tokens = client.tokens(include_revoked=show_revoked)
        bindings = [b for b in client.roles().bindings if b.subject.startswith("token:")]
    own: dict[str, list[str]] = {}
    for b in bindings:
        own.setdefault(b.subject[len("token:") :], []).append(f"{b.role}@{b.project}")
    if as_json:
        print_json([{**t.to_dict(), "roles": own.get(t.id, [])} for t in tokens])
        return
    if not tokens:
        console.print("No tokens. Create one with 'plinth token create NAME'.")
        return
    for t in tokens:
        status = t.status()
        style = {"active": "green", "expired": "yellow", "revoked": "red"}[status]
        console.print(styled((t.id, "bold"), f"  {t.display}  ", (status, style)))
        expiry = f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never"
        used = f"{when(t.last_used_at)} UTC" if t.last_used_at else "never"
        role = ", ".join(own.get(t.id, [])) or "its owner's"
        console.print(
            f"  '{t.name}', owner {t.owner}, role {role}, expires {expiry}, last used {used}"
        )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        str, typer.Argument(help="The token's id (tok_..., see 'plinth token list').")
    ],
    home: HomeOption = None,
) -> None:
    """Revoke a token: servers refuse it within seconds; its own roles are removed."""
    from plinth.cli.output import console, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        before = client.token(token_id)
        info = client.revoke_token(token_id)
    if before.revoked_at is not None:
        console.print(f"Token {info.id} was already revoked at {when(before.revoked_at)} UTC.")
        return
    console.print(f"Revoked token {info.id} '{info.name}' of {info.owner}.")


def _print_binding(verb: str, b: RoleBindingInfo) -> None:
    from plinth.cli.output import console

    console.print(f"{verb} {b.subject}: {b.role} in project '{b.project}'.")


@role_app.command("grant")
def role_grant(
    subject: Annotated[str, typer.Argument(help="A user, token:<id> or oidc:<sub>.")],
    role: Annotated[str, typer.Argument(help="viewer, developer, deployer or admin.")],
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Give a subject a role in a project (replacing the role it held there)."""
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        binding = client.grant_role(subject, role, project=project)
    _print_binding("Granted", binding)


@role_app.command("revoke")
def role_revoke(
    subject: Annotated[str, typer.Argument(help="A user, token:<id> or oidc:<sub>.")],
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Take away a subject's role in a project."""
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        binding = client.revoke_role(subject, project=project)
    _print_binding("Revoked", binding)


@role_app.command("list")
def role_list(
    project: Annotated[
        str | None,
        typer.Option("--project", help="Only this project's bindings.", show_default=False),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List role bindings, and the implicit admin of an embedded workspace."""
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        listing = client.roles(project)
    bindings, implicit = listing.bindings, listing.implicit
    if as_json:
        rows = [b.to_dict() for b in bindings]
        if implicit:
            rows.append({**implicit, "implicit": True})
        print_json(rows)
        return
    if bindings:
        out = Table(box=box.SIMPLE_HEAD)
        for column in ("project", "subject", "role", "granted"):
            out.add_column(column, no_wrap=True)
        out.add_column("by")
        for b in bindings:
            out.add_row(b.project, b.subject, b.role, f"{b.granted_at:%Y-%m-%d}", b.granted_by)
        console.print(out)
    elif not implicit:
        console.print("No role bindings. Grant one with 'plinth role grant SUBJECT ROLE'.")
    if implicit:
        console.print(
            f"{implicit['subject']} is {implicit['role']} of project '{implicit['project']}' "
            "implicitly: the workspace's own user, with the embedded catalog and no binding "
            "(docs/security.md)."
        )
