"""Records that follow a `mappings` entry: a users table, an orders stream, anything.

Identities come from the mapped fields (or fields named like identity types), user and
event attributes from the mapped or the remaining fields, and consent, ip, device id
and the data plan from the keys that name them; the event is checked against the
published schema like every other.
"""

from __future__ import annotations

import functools
import typing as t

import msgspec

from mparticle_facts.identities import DEVICE_IDENTITIES, field_identity_type
from mparticle_facts.numbers import to_int64
from target_mparticle import schema_rules as rules
from target_mparticle.clean import VALIDATED_ENTRIES, device_identity, user_identity
from target_mparticle.clock import now_ms
from target_mparticle.coerce import clean_object
from target_mparticle.inbound import CertainShapes, InvalidRecordError, fit_event, fit_shell
from target_mparticle.items import ConverterBase, Item, UserRow, digest_id, public, with_fields
from target_mparticle.preflight import quoted
from target_mparticle.values import (
    Tally,
    attribute_name,
    event_attributes,
    names_within_limits,
    scalar_user_attributes,
    to_attribute_string,
    to_epoch_ms,
    truncate,
    user_attributes,
)

#: Plans kept per stream (one per distinct set of field names; see `Plan`).
MAX_PLANS = 64
_COMMERCE_ACTION_FIELDS = (
    "transaction_id",
    "affiliation",
    "total_amount",
    "tax_amount",
    "shipping_amount",
    "coupon_code",
    "checkout_step",
    "products",
)


def default_identity_fields(record: t.Mapping[str, t.Any]) -> dict[str, str]:
    """Identity type -> field, for the fields of a record named like an identity type."""
    return dict(_identity_fields_of(tuple(record)))


@functools.lru_cache(maxsize=256)
def _identity_fields_of(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Worked out once per set of field names: a table sends the same columns each time."""
    found: dict[str, str] = {}
    for name in names:
        kind = field_identity_type(name)
        if kind is not None:
            found.setdefault(kind, name)
    return tuple(found.items())


class Plan(t.NamedTuple):
    """What a record's field names alone decide, worked out once per set of names.

    A table sends the same columns record after record, so which field is which
    identity, which fields become user attributes and which are left over for event
    attributes are looked up once, not once a record.
    """

    #: (identity type, field), in the mapping's order.
    identities: tuple[tuple[str, str], ...]
    #: (user attribute name, field), or empty for none.
    attributes: tuple[tuple[str, str], ...]
    #: Fields the batch uses (identities, attributes, the mapping's named fields).
    used: frozenset[str]
    #: Whether the record has `_sdc_` metadata fields (left out of its content id).
    has_metadata: bool
    #: Whether the attribute names are within mParticle's limits (`names_within_limits`).
    names_fit: bool


class MappedRecords(ConverterBase):
    """Converts records by their stream's mapping."""

    _plans: dict[tuple[str, ...], Plan]

    def _plan(self, record: dict[str, t.Any]) -> Plan:
        names = tuple(record)
        plans: dict[tuple[str, ...], Plan] = self.__dict__.setdefault("_plans", {})
        plan = plans.get(names)
        if plan is None:
            if len(plans) >= MAX_PLANS:
                plans.clear()  # a stream whose records each have other fields: no memory leak
            plan = plans[names] = self._new_plan(names)
        return plan

    def _new_plan(self, names: tuple[str, ...]) -> Plan:
        mapping = self.mapping
        identities = (
            tuple(mapping.identities.items())
            if mapping.identities is not None
            else _identity_fields_of(names)
        )
        used = {field for _, field in identities}
        used.update(mapping.role_fields())
        attr_map = mapping.user_attributes
        if attr_map is None and mapping.kind == "user":
            attr_map = {n: n for n in names if n not in used and not n.startswith("_sdc_")}
        attributes = tuple(attr_map.items()) if attr_map else ()
        used.update(field for _, field in attributes)
        has_metadata = any(n.startswith("_sdc_") for n in names)
        names_fit = names_within_limits([n for n, _ in attributes])
        return Plan(identities, attributes, frozenset(used), has_metadata, names_fit)

    def _mapped(self, record: dict[str, t.Any]) -> Item:
        mapping = self.mapping
        plan = self._plan(record)
        user_ids, device, mpid = self._mapped_identities(record, plan.identities)
        # The batch's fields in the order they always had; empty ones left out.
        batch: dict[str, t.Any] = {"environment": self.environment}
        if user_ids:
            batch["user_identities"] = user_ids
        if mpid is not None:
            batch["mpid"] = mpid
        if device:
            batch["device_info"] = device
        if plan.attributes:
            attrs = self._user_attributes(record, plan)
            if attrs:
                batch["user_attributes"] = attrs
            if mapping.null_user_attributes == "delete":
                # A column that turned null: the attribute goes away in mParticle too.
                # A field the record does not carry (deselected in the tap's catalog,
                # or named in `user_attributes` but not sent) says nothing of its value.
                deleted = [
                    n if len(n) <= rules.API_LIMIT_NAME else attribute_name(n, self.tally)
                    for n, f in plan.attributes
                    if f in record and record[f] is None
                ]
                if deleted:
                    batch["deleted_user_attributes"] = deleted
        if self._batch_fields_apply:
            with_fields(batch, **self._mapped_batch_fields(record))
            fit_shell(batch, self.tally, built_attributes=True)
        else:
            # Strings for identities, an int for the mpid, built attributes: the same
            # names make a shell of the same validity (a tenth of a user record).
            shape = (batch["environment"], tuple(batch), tuple(user_ids), tuple(device))
            self._shapes.fit(batch, shape, self.tally)
        if mapping.kind == "user":
            return UserRow(self.stream, record, batch, [], None, self.update_ids.next())

        content = public(record) if plan.has_metadata else record
        event = self._mapped_event(record, set(plan.used), content)
        request_id = digest_id(
            "event", self.stream, self.id_scope, event["data"]["source_message_id"]
        )
        return Item(self.stream, record, batch, [event], None, request_id)

    @functools.cached_property
    def _shapes(self) -> CertainShapes:
        """The shell shapes of this stream known valid (see `inbound.CertainShapes`)."""
        return CertainShapes(VALIDATED_ENTRIES)

    @functools.cached_property
    def _batch_fields_apply(self) -> bool:
        """Whether the mapping or the settings give batches consent, ip, a device id or a plan."""
        mapping = self.mapping
        return bool(
            mapping.consent is not None
            or mapping.ip_field
            or mapping.device_id_field
            or self.data_plan_context() is not None
        )

    def _user_attributes(self, record: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        """The row's user attributes: text and integers straight, anything else in full."""
        if plan.names_fit:
            scalars = scalar_user_attributes(record, plan.attributes)
            if scalars is not None:
                return scalars
        return user_attributes([(n, record.get(f)) for n, f in plan.attributes], self.tally)

    def _mapped_identities(
        self, record: dict[str, t.Any], identity_fields: tuple[tuple[str, str], ...]
    ) -> tuple[dict[str, str], dict[str, str], int | None]:
        """User identities, device identities and MPID from the mapped fields."""
        tally = self.tally
        user_ids: dict[str, str] = {}
        device: dict[str, str] = {}
        mpid: int | None = None
        for identity_type, field in identity_fields:
            value = record.get(field)
            if value is None or value == "" or (type(value) is str and value.isspace()):
                continue  # blank: no identity, as an empty string is none
            if identity_type == "mpid":
                mpid = to_int64(value)
                if mpid is None:
                    msg = f"mpid field {field!r} is not a 64-bit integer"
                    raise InvalidRecordError(msg)
            elif identity_type in DEVICE_IDENTITIES:
                device_text = device_identity(identity_type, value, tally)
                if device_text is not None:
                    device[identity_type] = device_text
            elif type(value) is str and len(value) <= rules.API_LIMIT_VALUE:
                user_ids[identity_type] = value  # the usual identity: no call
            else:
                text = user_identity(value, tally)
                if text is not None:
                    user_ids[identity_type] = text
        if not user_ids and not device and mpid is None:
            looked = ", ".join(sorted(f for _, f in identity_fields)) or "no identity-named field"
            msg = (
                f"has no identity (looked in: {looked}); name the stream's identity "
                "fields in mappings.<stream>.identities, or leave the stream out of the run"
            )
            raise InvalidRecordError(msg)
        return user_ids, device, mpid

    def _mapped_batch_fields(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """Consent, ip, mp_deviceid and the data plan of a mapped record's batch."""
        mapping = self.mapping
        fields: dict[str, t.Any] = {}
        if mapping.consent is not None:
            fields["consent_state"] = mapping.consent.build(record, self._event_time(record))
        if mapping.ip_field and record.get(mapping.ip_field) not in (None, ""):
            fields["ip"] = to_attribute_string(record[mapping.ip_field])
        if mapping.device_id_field and record.get(mapping.device_id_field) not in (None, ""):
            device_id = to_attribute_string(record[mapping.device_id_field])
            if rules.UUID_PATTERN.match(device_id):
                fields["mp_deviceid"] = device_id
            else:
                self.tally["mp_deviceid values that are not UUIDs dropped"] += 1
        fields["context"] = self.data_plan_context()
        return fields

    def _event_time(self, record: dict[str, t.Any]) -> int:
        """The record's event time (its timestamp field), else now: consent's default time."""
        field = self.mapping.timestamp_field
        stamp = to_epoch_ms(record.get(field)) if field else None
        if stamp is None and field and record.get(field) is not None:
            self.tally[f"consent times taken as now: {field[:80]!r} held no readable time"] += 1
        return stamp if stamp is not None else now_ms()

    def _mapped_event(  # noqa: C901, PLR0912 - one branch per documented option
        self, record: dict[str, t.Any], used: set[str], content: dict[str, t.Any]
    ) -> dict[str, t.Any]:
        mapping = self.mapping
        tally = self.tally
        if mapping.event_name_field:
            raw_name = record.get(mapping.event_name_field)
            if raw_name is None or raw_name == "":
                msg = f"event name field {mapping.event_name_field!r} is empty"
                raise InvalidRecordError(msg)
            name = to_attribute_string(raw_name)
        else:
            name = mapping.event_name or self.stream
        name = truncate(name, rules.API_LIMIT_NAME, "event names truncated to 256", tally)

        data: dict[str, t.Any] = {}
        if mapping.source_message_id_field:
            given = record.get(mapping.source_message_id_field)
            if given is None or given == "":
                msg = f"source message id field {mapping.source_message_id_field!r} is empty"
                raise InvalidRecordError(msg)
            data["source_message_id"] = to_attribute_string(given)
        else:
            key = [record.get(k) for k in self.key_properties]
            data["source_message_id"] = digest_id(self.stream, key, content)
        if mapping.timestamp_field:
            stamp = to_epoch_ms(record.get(mapping.timestamp_field))
            if stamp is None:
                given = record.get(mapping.timestamp_field)
                what = "is missing or null" if given is None else f"holds {quoted(given)}"
                msg = f"timestamp field {mapping.timestamp_field!r} {what}, no usable time"
                raise InvalidRecordError(msg)
            data["timestamp_unixtime_ms"] = stamp
        event_type = mapping.custom_event_type
        if mapping.event_fields is not None:
            event_type = mapping.event_fields.fill(record, data, tally) or event_type

        kind = mapping.kind
        if kind == "commerce_event":
            self._commerce(record, data, used, event_type)
        attr_map = mapping.event_attributes
        if attr_map is None:
            pairs: t.Iterable[tuple[str, object]] = (
                (k, v) for k, v in record.items() if k not in used and not k.startswith("_sdc_")
            )
        else:
            pairs = ((n, record.get(f)) for n, f in attr_map.items())
        attributes = event_attributes(pairs, tally)
        if attributes:
            data["custom_attributes"] = attributes

        if kind == "screen_view":
            data["screen_name"] = name
            return fit_event({"event_type": "screen_view", "data": data}, tally)
        data["event_name"] = name
        if kind == "commerce_event":
            if event_type:
                data["custom_event_type"] = event_type
            return fit_event({"event_type": "commerce_event", "data": data}, tally)
        data["custom_event_type"] = event_type or "other"
        return fit_event({"event_type": "custom_event", "data": data}, tally)

    def _commerce(
        self,
        record: dict[str, t.Any],
        data: dict[str, t.Any],
        used: set[str],
        event_type: str | None,
    ) -> None:
        """Commerce fields come from record fields named as in the Events API.

        `event_type` is the mapping's `custom_event_type`, or the row's own: a product
        action among them is the action when the row gives no `product_action`.
        """
        tally = self.tally
        given_action = record.get("product_action")
        if isinstance(given_action, dict):
            used.add("product_action")
            action = clean_object(given_action, tally)
        else:
            action = {}
            for field in _COMMERCE_ACTION_FIELDS:
                if record.get(field) is not None:
                    used.add(field)
                    action[field] = record[field]
            action = clean_object(action, tally)
            verb = given_action if isinstance(given_action, str) else None
            if verb is not None:
                used.add("product_action")
            action["action"] = verb or (
                event_type if event_type in rules.PRODUCT_ACTIONS else "purchase"
            )
        verb = action.get("action")
        if not isinstance(verb, str) or verb not in rules.PRODUCT_ACTIONS:
            msg = f"product action {verb!r} is not one the Events API accepts"
            raise InvalidRecordError(msg)
        if "products" in action:
            products = _product_list(action.pop("products"), tally)
            if products:
                action["products"] = [_clean_product(p, tally) for p in products]
        if verb == "purchase" and "total_amount" not in action and not action.get("products"):
            # Valid, but an empty purchase: its columns are likely named otherwise.
            tally[EMPTY_PURCHASES] += 1
        data["product_action"] = action
        currency = record.get("currency_code")
        if currency is not None:
            used.add("currency_code")
            data["currency_code"] = to_attribute_string(currency)


EMPTY_PURCHASES = (
    "purchases sent with no total_amount or products (fields named as in the Events API; "
    "rename others with stream_maps)"
)


#: Tally key of products that are no object (or products no list of them).
PRODUCTS_DROPPED = "products dropped that are not objects (or JSON text of a list of them)"


def _product_list(value: object, tally: Tally) -> list[dict[str, t.Any]]:
    """A `products` column as a list of product objects; what is none, dropped and counted.

    A CSV or spreadsheet tap sends a JSON column as text, and some tables hold one
    product as an object: both are read. Text that is no JSON list, and items that
    are no object, are dropped and counted, never left out unsaid.
    """
    if isinstance(value, str):
        if not value.strip():
            return []  # blank: null, as CSV taps write it
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            tally[PRODUCTS_DROPPED] += 1
            return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        tally[PRODUCTS_DROPPED] += 1
        return []
    products = [p for p in value if isinstance(p, dict)]
    if len(products) < len(value):
        tally[PRODUCTS_DROPPED] += len(value) - len(products)
    return products


def _clean_product(product: dict[str, t.Any], tally: Tally) -> dict[str, t.Any]:
    clean = clean_object(product, tally)
    for field in ("id", "name"):
        if field in clean and not isinstance(clean[field], str):
            clean[field] = to_attribute_string(clean[field])
    if "position" in clean:
        # An integer in a product (text in a promotion), so `coerce`, which types a
        # field by its name alone, leaves it as given: a "1" from a text column
        # made the whole product action invalid.
        position = to_int64(clean["position"])
        if position is None:
            del clean["position"]
            tally["product positions that are not integers dropped"] += 1
        else:
            clean["position"] = position
    return clean


# ---------------------------------------------------------------------------
