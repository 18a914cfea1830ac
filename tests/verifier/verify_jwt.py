"""An independent verifier for the sign-in assertion, as a frontend in Python would write it.

Usage: verify_jwt.py TOKEN AUDIENCE ISSUER < jwks.json
Finds the key by the token's kid in the JWKS, verifies signature, exp, aud and iss with PyJWT,
prints the claims as JSON and exits 0; on refusal prints the exception's name and exits 1.
"""
import json
import sys

import jwt


def main() -> int:
    token, audience, issuer = sys.argv[1:4]
    jwks = json.load(sys.stdin)
    kid = jwt.get_unverified_header(token)["kid"]
    matching = [key for key in jwks["keys"] if key.get("kid") == kid]
    if not matching:
        print("NoMatchingKey")
        return 1
    key = jwt.PyJWK(matching[0])
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[matching[0]["alg"]],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as err:
        print(type(err).__name__)
        return 1
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
