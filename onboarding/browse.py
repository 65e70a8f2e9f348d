"""A plant's OPC UA address space as a plain tree: objects and variables under ``Objects``.

One Browse request per object (hierarchical references: Organizes, HasComponent, HasProperty), type
definitions resolved to their browse names once each, variables' data types and value ranks read in
one request at the end. Bounded in depth and size so a huge server cannot stall discovery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from asyncua import Client, ua

OBJECT, VARIABLE = "object", "variable"


@dataclass
class Item:
    """One node of the tree."""

    node_id: ua.NodeId
    name: str
    kind: str  # object | variable
    type_name: str = ""
    path: tuple[str, ...] = ()
    children: list[Item] = field(default_factory=list)
    datatype: str = ""
    value_rank: int = -1

    @property
    def path_text(self) -> str:
        return "/".join(self.path)

    def walk(self):
        """This node and every descendant, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def child(self, name: str) -> Item | None:
        """The direct child called ``name`` (case-insensitive), if any."""
        return next((c for c in self.children if c.name.lower() == name.lower()), None)


class Tree:
    """The browsed address space below ``Objects`` (the Server object and ``skip`` names left out)."""

    def __init__(self, root: Item, truncated: bool):
        self.root, self.truncated = root, truncated

    def objects(self):
        return (i for i in self.root.walk() if i.kind == OBJECT)


async def browse_tree(client: Client, skip: list[str], max_depth: int = 10, max_nodes: int = 20_000) -> Tree:
    """Browse ``Objects`` breadth first; names matching a ``skip`` pattern are not entered."""
    skip_re = [re.compile(p, re.IGNORECASE) for p in skip]
    root = Item(client.nodes.objects.nodeid, "Objects", OBJECT, path=())
    frontier, count, truncated = [root], 0, False
    type_names: dict[ua.NodeId, str] = {}
    variables: list[Item] = []
    for _depth in range(max_depth):
        next_frontier: list[Item] = []
        for parent in frontier:
            refs = await client.get_node(parent.node_id).get_children_descriptions(
                refs=ua.ObjectIds.HierarchicalReferences,
                nodeclassmask=ua.NodeClass.Object | ua.NodeClass.Variable,
            )
            for ref in refs:
                name = ref.BrowseName.Name
                if ref.NodeId == ua.NodeId(ua.ObjectIds.Server) or any(r.fullmatch(name) for r in skip_re):
                    continue
                if count >= max_nodes:
                    truncated = True
                    break
                count += 1
                kind = OBJECT if ref.NodeClass == ua.NodeClass.Object else VARIABLE
                item = Item(ref.NodeId, name, kind, path=(*parent.path, name))
                item.type_name = await _type_name(client, ref.TypeDefinition, type_names)
                parent.children.append(item)
                next_frontier.append(item)
                if kind == VARIABLE:
                    variables.append(item)
        frontier = next_frontier
        if not frontier:
            break
    else:
        truncated = truncated or bool(frontier)
    await _read_types(client, variables)
    return Tree(root, truncated)


async def _type_name(client: Client, type_id: ua.ExpandedNodeId | ua.NodeId, cache: dict) -> str:
    node_id = ua.NodeId(type_id.Identifier, type_id.NamespaceIndex) if type_id else None
    if node_id is None or node_id.is_null():
        return ""
    if node_id not in cache:
        try:
            cache[node_id] = (await client.get_node(node_id).read_browse_name()).Name
        except Exception:  # noqa: BLE001 - an unreadable type is just unnamed
            cache[node_id] = ""
    return cache[node_id]


async def _read_types(client: Client, variables: list[Item], chunk: int = 500) -> None:
    """Fill every variable's data type name and value rank (two Read requests per chunk)."""
    for start in range(0, len(variables), chunk):
        part = variables[start:start + chunk]
        nodes = [client.get_node(v.node_id) for v in part]
        types = await client.read_attributes(nodes, ua.AttributeIds.DataType)
        ranks = await client.read_attributes(nodes, ua.AttributeIds.ValueRank)
        for var, dtype, rank in zip(part, types, ranks, strict=True):
            type_id = dtype.Value.Value if dtype.Value is not None else None
            if isinstance(type_id, ua.NodeId) and type_id.NamespaceIndex == 0:
                var.datatype = ua.ObjectIdNames.get(type_id.Identifier, str(type_id.Identifier))
            elif isinstance(type_id, ua.NodeId):
                var.datatype = await _type_name(client, type_id, {})
            var.value_rank = int(rank.Value.Value) if rank.Value is not None and rank.Value.Value is not None else -1
