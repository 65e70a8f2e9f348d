"""Batched value writes into an asyncua server's address space, with subscribers notified cheaply.

asyncua's ``AddressSpace.write_attribute_value`` costs ~190 us per monitored write on this machine, most
of it in ``MonitoredItemValues.set_current_datavalue``, which ``copy.deepcopy``s every DataValue so
that a caller mutating its value later cannot corrupt the change detection. :func:`write_values`
does what that path does for a batch of fresh DataValues the caller promises never to mutate
(every call site here builds a new DataValue per write): store the value, then for each monitored item
apply the same monitoring-mode, trigger and deadband checks (asyncua's own static methods) and
enqueue the notification into the item's subscription, without the copy. Callbacks it does not
recognise (any other datachange callback) are awaited exactly as asyncua would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from asyncua import ua
from asyncua.server.address_space import AddressSpace
from asyncua.server.monitored_item_service import MonitoredItemService

log = logging.getLogger(__name__)

_DATACHANGE = MonitoredItemService.datachange_callback
_VALUE = ua.AttributeIds.Value
_DISABLED = ua.MonitoringMode.Disabled
_STATUS_VALUE = ua.DataChangeTrigger.StatusValue


class BatchWriteError(ValueError):
    """A write of the batch was refused (unknown node or wrong variant type)."""


async def _notify(service: MonitoredItemService, handle: int, dv: ua.DataValue) -> None:
    """asyncua's ``MonitoredItemService.datachange_callback`` minus the deepcopy of ``dv``."""
    mid = service._monitored_datachange[handle]
    mdata = service._monitored_items[mid]
    if mdata.mode == _DISABLED:
        return
    values = mdata.mvalue
    values.old_dvalue, values.current_dvalue = values.current_dvalue, dv
    flt = mdata.filter
    if flt:
        passed = service._is_data_changed(values, flt.Trigger) and service._is_deadband_exceeded(values, flt)
    else:
        passed = service._is_data_changed(values, _STATUS_VALUE)
    if passed:
        notification = ua.MonitoredItemNotification(ClientHandle=mdata.client_handle, Value=dv)
        await service.isub.enqueue_datachange_event(mid, notification, mdata.queue_size)


async def write_values(
    aspace: AddressSpace, writes: Iterable[tuple[ua.NodeId, ua.DataValue]], yield_every: int = 1000
) -> int:
    """Write each ``(node id, DataValue)`` as the Value attribute and notify its monitored items.

    The DataValues must be fresh objects the caller will not mutate (they are shared with the
    subscription queues instead of copied). Yields to the event loop every ``yield_every`` writes so
    publish requests keep being served during a large batch. Returns the number of values written.
    Raises :class:`BatchWriteError` naming the node for an unknown node or a changed variant type.
    """
    nodes = aspace._nodes
    written = 0
    for nodeid, dv in writes:
        node = nodes.get(nodeid)
        attval = node.attributes.get(_VALUE) if node is not None else None
        if attval is None:
            raise BatchWriteError(f"node {nodeid.to_string()} has no Value attribute; write existing variables only")
        current = attval.value
        if current is not None and current.Value is not None and dv.Value is not None:
            expected = current.Value.VariantType
            if expected != ua.VariantType.Null and dv.Value.VariantType != expected:
                raise BatchWriteError(
                    f"node {nodeid.to_string()} holds {expected.name}, not {dv.Value.VariantType.name}; "
                    "write the variable's own type"
                )
        if attval.value_setter is not None:
            attval.value_setter(node, _VALUE, dv)
        else:
            attval.value = dv
            attval.value_callback = None
        for handle, callback in attval.datachange_callbacks.items():
            try:
                if getattr(callback, "__func__", None) is _DATACHANGE:
                    await _notify(callback.__self__, handle, dv)
                else:
                    await callback(handle, dv)
            except Exception:  # as asyncua does: one broken subscriber must not stop the writer
                log.exception("datachange callback %s of %s failed", handle, nodeid.to_string())
        written += 1
        if written % yield_every == 0:
            await asyncio.sleep(0)
    return written
