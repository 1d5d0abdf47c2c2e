"""Loading nftables rulesets into a namespace: one table replaced as a whole, in one atomic transaction."""

from __future__ import annotations

from stratus.network.dataplane import netns as nsutil


def replace_tables(namespace: str, tables: dict[str, str]) -> None:
    """Make each ``"family name"`` table of ``tables`` exactly its body (``""`` deletes the table): add, delete
    and redefine in one ``nft -f`` transaction, so the kernel never sees a half-loaded firewall."""
    lines = []
    for table, body in tables.items():
        lines.append(f"table {table}")
        lines.append(f"delete table {table}")
        if body:
            lines.append(f"table {table} {{\n{body}\n}}")
    nsutil.run(namespace, ["nft", "-f", "-"], input="\n".join(lines) + "\n")


def list_table(namespace: str, table: str) -> str:
    """The table as ``nft list table`` prints it, or "" if it is not there."""
    proc = nsutil.run(namespace, ["nft", "list", "table", *table.split()], check=False)
    return proc.stdout if proc.returncode == 0 else ""
