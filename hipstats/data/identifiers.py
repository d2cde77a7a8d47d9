"""Direct identifiers: refused by header however spelled, and by value in every text column.

hipstats keeps only pseudonymous data. Validation refuses

* a column whose header names a direct identifier (rule ``identifier_column``). Headers are
  compared after :func:`fold_header`: Unicode compatibility forms, letter case, accents,
  lookalike letters from other scripts (Cyrillic ``а`` for Latin ``a``, Greek ``ο`` for
  ``o``...), camelCase and every separator are folded, and a trailing note in brackets
  (``DOB (dd/mm/yyyy)``) or a trailing ``number`` / ``no`` / ``nr`` is ignored. The
  spellings (:data:`IDENTIFIER_HEADERS`) cover English and the major European languages:
  names, e-mail, phone / mobile / tel / contact, address, postcode / zip, date of birth
  (DOB, geburtsdatum, date de naissance...), MRN, NHS number, social security and other
  national id numbers, passport.
* a value that looks like an e-mail address or a phone number in any text column, and a
  participant id or rater label that looks like a person's name (rule
  ``identifier_value``), see :func:`identifying_kind`.

Pseudonymous codes pass (:data:`PSEUDONYM_ALLOW`): letters then digits (``P001``,
``HIP-0042``, ``site2_017``) and plain runs of digits (a 9-digit numeric study code such as
``123456789``, or ``000123456``). A plain run of digits counts as a phone number only when it
starts with a trunk ``0`` and has 10 to 15 digits (``07700900123``); written with ``+``,
``00`` or separators (``+44 20 7946 0958``, ``(020) 7946-0958``) it needs 9 to 15 digits.

Identifying values are never echoed: :func:`redact` replaces them in every problem message.

Examples
--------
>>> from hipstats.data.identifiers import is_identifier_header, identifying_kind
>>> [is_identifier_header(h) for h in ("FirstName", "DOB (dd/mm/yyyy)", "nаme", "participant_id")]
[True, True, True, False]
>>> identifying_kind("jane@example.org"), identifying_kind("123456789"), identifying_kind("JOHN SMITH", names=True)
('e-mail address', None, 'person name')
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold_header", "is_identifier_header", "identifying_kind", "redact", "IDENTIFIER_HEADERS",
           "PSEUDONYM_ALLOW", "WITHHELD"]

#: Capital lookalikes of other scripts folded to the Latin capital they imitate (before lower-casing).
CONFUSABLE_CAPITALS = str.maketrans({
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J", "Ԁ": "D", "Ӏ": "I",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
#: Lookalike letters of other scripts folded to the Latin letter they imitate (after lower-casing).
CONFUSABLES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "һ": "h", "ԛ": "q",
    "ԝ": "w", "ӏ": "l", "ь": "b", "п": "n", "г": "r",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "γ": "y", "ζ": "z",
    # Latin letters without a decomposition
    "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ŀ": "l",
    # digits and signs used as letters
    "@": "a", "$": "s",
})

_NAME = (r"(first|last|full|given|family|middle|maiden|birth|patient|participant|subject|person|sur|fore|"
         r"christian|nick|user|mother|father|parent|guardian|child|contact|next_?of_?kin|rater|examiner|"
         r"assessor|therapist|clinician|physician|doctor|gp|carer|caregiver)?_?names?(_?\d)?")
_NO = r"(_?(number|numbers|num|no|nr|nummer|numero|n|id|code))"
#: Folded header spellings (regular expressions, full match) refused as direct identifiers.
IDENTIFIER_HEADERS: tuple[str, ...] = (
    _NAME,
    r"initials?|forename|surname|vorname|nachname|familienname|rufname|nom|prenom|nom_?de_?famille|"
    r"nombre|apellidos?|nome|cognome|naam|voornaam|achternaam|imie|nazwisko|fornavn|efternavn|etternavn|"
    r"fornamn|efternamn|etunimi|sukunimi|jmeno|prijmeni",
    r"e_?mail(_?address|_?adresse)?|mail_?address|mail_?adresse|courriel|correo(_?electronico)?|"
    r"adresse_?(e_?)?mail|indirizzo_?e?_?mail",
    r"((tele)?phone|(home|work|mobile|cell|contact|emergency)_?(phone|tel)|mobile(_?phone)?|cell(_?phone)?|"
    r"tel|telefon|telefono|telephone|telefoon|puhelin|portable|handy|cellulare|movil|fax|whats_?app|contact|"
    r"contact_?(details|info|information|person))" + _NO + "?",
    r"(street|home|postal|mailing|residential|house|billing)?_?address(_?line)?(_?\d)?|street|adresse|"
    r"anschrift|strasse|direccion|indirizzo|adres|adresa|domicile|wohnort",
    r"post_?code|postal_?code|zip|zip_?code|plz|postleitzahl|code_?postal|codigo_?postal|"
    r"codice_?postale|postnummer",
    r"(dob|d_?o_?b|date_?of_?birth|birth_?date|birth_?day|bday|geburtsdatum|geburtstag|geb_?datum|"
    r"date_?de_?naissance|fecha_?de_?nacimiento|data_?di_?nascita|geboortedatum|fodelsedatum|"
    r"fodselsdato|syntymaaika|data_?urodzenia)(_?(dd|mm|yy|yyyy|jjjj|tt|aaaa|jj|aa|d|m|y))*",
    r"(mrn|medical_?record|nhs|ssn|social_?security|social_?insurance|national_?insurance|nino|"
    r"national_?id|sozialversicherungsnummer|svnr|versichertennummer|securite_?sociale|nir|insee|"
    r"codice_?fiscale|dni|nif|bsn|burgerservicenummer|personnummer|cpr|pesel|passport|"
    r"driver_?s?_?licen[cs]e|tax_?id|ahv|avs|rijksregisternummer)" + _NO + "*",
    r"(hospital|chi|sv|insurance|case_?note|versicherten|krankenversicherten|health_?insurance|medicare|"
    r"medicaid|health_?card|pps|tax|identity_?card|id_?card)" + _NO + "+",
)
_HEADER_RE = re.compile(r"(?:" + "|".join(f"(?:{p})" for p in IDENTIFIER_HEADERS) + r")")
_BRACKETS = re.compile(r"[(\[{].*?[)\]}]")


def fold_header(name: object) -> str:
    """A header folded for comparison: NFKC, lookalikes and accents folded, lower case, ``_`` separators.

    >>> fold_header("  PatientName "), fold_header("E-Mail Address"), fold_header("Geburts­datum")
    ('patient_name', 'e_mail_address', 'geburtsdatum')
    >>> fold_header("nаme")  # Cyrillic а
    'name'
    """
    s = unicodedata.normalize("NFKC", str(name))
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", s)  # camelCase -> camel_Case
    s = s.translate(CONFUSABLE_CAPITALS).casefold().translate(CONFUSABLES)
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = s.replace("\u00ad", "")  # soft hyphen
    return re.sub(r"[^0-9a-z]+", "_", s).strip("_")


def is_identifier_header(name: object) -> bool:
    """True when a column header names a direct identifier, however it is spelled.

    >>> [is_identifier_header(h) for h in ("MRN number", "nhs_no", "social_security_no", "emailaddress",
    ...                                      "mobile_phone", "Tel.", "postcode", "visit_date", "rater")]
    [True, True, True, True, True, True, True, False, False]
    """
    folded = fold_header(_BRACKETS.sub(" ", str(name)))
    return bool(folded) and bool(_HEADER_RE.fullmatch(folded) or _HEADER_RE.fullmatch(folded.replace("_", "")))


# ------------------------------------------------------------------------------ values
#: Pseudonymous codes that always pass: optional letters/separators then digits, or digits only.
PSEUDONYM_ALLOW = re.compile(r"[A-Za-z]{1,12}[-_ ./]?[A-Za-z]{0,6}[-_./]?\d{1,12}[A-Za-z]?|[1-9]\d{0,14}|0\d{0,8}")
_EMAIL = re.compile(r"[^\s@<>(),;:\"']+@[^\s@<>(),;:\"']+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)\d[\d ().\-/]{6,}\d(?!\w)|(?<![\w+])0\d[\d ().\-/]{7,}\d(?!\w)|"
                    r"(?<![\w+])\(?\d{2,5}\)?[ .\-/]\d{2,5}[ .\-/]\d{3,5}(?!\w)|(?<![\w+])0\d{9,14}(?!\w)")
_PERSON = re.compile(r"[^\W\d_]{2,}\.?(?:[-'’][^\W\d_]{2,})?(?:,?\s+[^\W\d_]{1,}\.?(?:[-'’][^\W\d_]{2,})?){1,3}")
#: What a withheld value is replaced with in messages.
WITHHELD = "[withheld: {kind}]"


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def identifying_kind(value: object, *, names: bool = False) -> str | None:
    """What direct identifier a cell value looks like (None when it looks like none).

    Parameters
    ----------
    value : object
        A cell value; only strings are looked at.
    names : bool
        Also look for a person's name (two or more words of letters): used for participant
        ids and rater labels, not for free text or category labels.

    Returns
    -------
    str or None
        ``"e-mail address"``, ``"phone number"`` or ``"person name"``.

    >>> [identifying_kind(v) for v in ("P001", "HIP-0042", "123456789", "+44 20 7946 0958", "07700900123",
    ...                                "called (020) 7946-0958", "2026-03-16")]
    [None, None, None, 'phone number', 'phone number', 'phone number', None]
    >>> identifying_kind("Smith, John", names=True), identifying_kind("site 2", names=True)
    ('person name', None)
    """
    if not isinstance(value, str) or len(value) < 5:
        return None
    s = value.strip()
    if PSEUDONYM_ALLOW.fullmatch(s):
        return None
    if "@" in s and _EMAIL.search(s):
        return "e-mail address"
    for m in _PHONE.finditer(s):
        if 9 <= _digits(m.group(0)) <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.group(0)):
            return "phone number"
    if names and _PERSON.fullmatch(s) and not any(c.isdigit() for c in s):
        return "person name"
    return None


def redact(text: str, values) -> str:
    """``text`` with every value of ``values`` (identifying values) replaced by :data:`WITHHELD`.

    >>> redact("participant 'jane@example.org' is unknown", {"jane@example.org": "e-mail address"})
    "participant '[withheld: e-mail address]' is unknown"
    """
    if not values or not text:
        return text
    for v in sorted(values, key=len, reverse=True):
        if v and v in text:
            text = text.replace(v, WITHHELD.format(kind=values[v]))
    return text
